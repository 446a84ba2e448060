"""peppol e-invoices: one delivery record per invoice or credit note sent to the access point

Revision ID: c0973cebd2a3
Revises: a53f5224a81a
Create Date: 2026-11-25 06:21:55.717190

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c0973cebd2a3'
down_revision = 'a53f5224a81a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('peppol_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('credit_note_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sending', 'delivered', 'failed', name='deliverystatus', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=160), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(invoice_id IS NULL) <> (credit_note_id IS NULL)', name=op.f('ck_peppol_deliveries_one_document')),
    sa.ForeignKeyConstraint(['credit_note_id'], ['credit_notes.id'], name=op.f('fk_peppol_deliveries_credit_note_id_credit_notes')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_peppol_deliveries_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_peppol_deliveries')),
    sa.UniqueConstraint('credit_note_id', name=op.f('uq_peppol_deliveries_credit_note_id')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_peppol_deliveries_idempotency_key')),
    sa.UniqueConstraint('invoice_id', name=op.f('uq_peppol_deliveries_invoice_id'))
    )
    with op.batch_alter_table('peppol_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_peppol_deliveries_status_next', ['status', 'next_attempt_at'], unique=False)



def downgrade():
    with op.batch_alter_table('peppol_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_peppol_deliveries_status_next')

    op.drop_table('peppol_deliveries')
