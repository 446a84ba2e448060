"""bank statements: the incoming transfers read from imported camt.053 and CODA files, once per
account and bank reference, and what they were matched to

Revision ID: 3f9b3fda452e
Revises: c0973cebd2a3
Create Date: 2026-11-25 06:23:37.089843

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f9b3fda452e'
down_revision = 'c0973cebd2a3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bank_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=40), nullable=False),
    sa.Column('reference', sa.String(length=120), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('statement_ref', sa.String(length=60), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('booked_on', sa.Date(), nullable=True),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('payer_account', sa.String(length=40), nullable=False),
    sa.Column('communication', sa.String(length=12), nullable=False),
    sa.Column('text', sa.String(length=300), nullable=False),
    sa.Column('state', sa.Enum('unmatched', 'matched', 'ignored', name='bankentrystate', native_enum=False, length=32), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('applied_cents', sa.Integer(), nullable=False),
    sa.Column('surplus_cents', sa.Integer(), nullable=False),
    sa.Column('surplus_settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_bank_entries_amount_positive')),
    sa.CheckConstraint('applied_cents >= 0 AND surplus_cents >= 0', name=op.f('ck_bank_entries_parts_not_negative')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_bank_entries_imported_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_bank_entries_order_id_orders')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_bank_entries_payment_id_payments')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_bank_entries_resolved_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_entries')),
    sa.UniqueConstraint('account', 'reference', name=op.f('uq_bank_entries_account_reference'))
    )
    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_entries_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_bank_entries_state', ['state'], unique=False)



def downgrade():
    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_entries_state')
        batch_op.drop_index(batch_op.f('ix_bank_entries_order_id'))

    op.drop_table('bank_entries')
