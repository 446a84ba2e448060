"""payments: online payments (Stripe, Mollie), mandates, chargebacks, provider events

Revision ID: 3d3ba518c208
Revises: 376fd0913f75
Create Date: 2026-11-25 03:45:56.862530

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3d3ba518c208'
down_revision = '376fd0913f75'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('chargebacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provider_ref', sa.String(length=100), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_chargebacks_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chargebacks')),
    sa.UniqueConstraint('provider', 'provider_ref', name=op.f('uq_chargebacks_provider_provider_ref'))
    )
    with op.batch_alter_table('chargebacks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chargebacks_payment_id'), ['payment_id'], unique=False)

    op.create_table('mandates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('customer_ref', sa.String(length=100), nullable=False),
    sa.Column('mandate_ref', sa.String(length=100), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('state', sa.Enum('valid', 'revoked', 'replaced', name='mandatestate', native_enum=False, length=32), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_mandates_payment_id_payments')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mandates_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mandates')),
    sa.UniqueConstraint('provider', 'mandate_ref', name=op.f('uq_mandates_provider_mandate_ref'))
    )
    with op.batch_alter_table('mandates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mandates_user_id'), ['user_id'], unique=False)

    op.create_table('provider_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('event_ref', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=80), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_provider_events_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_events')),
    sa.UniqueConstraint('provider', 'event_ref', name=op.f('uq_provider_events_provider_event_ref'))
    )
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_events_payment_id'), ['payment_id'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkout_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('method', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('save_method', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('customer_ref', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('intent_ref', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=300), server_default='', nullable=False))
        batch_op.create_index(batch_op.f('ix_payments_intent_ref'), ['intent_ref'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_payments_idempotency_key'), ['idempotency_key'])

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_note_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_refunds_credit_note_id_credit_notes'), 'credit_notes', ['credit_note_id'], ['id'])



def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_refunds_credit_note_id_credit_notes'), type_='foreignkey')
        batch_op.drop_column('credit_note_id')

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_idempotency_key'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_payments_intent_ref'))
        batch_op.drop_column('last_error')
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('intent_ref')
        batch_op.drop_column('customer_ref')
        batch_op.drop_column('save_method')
        batch_op.drop_column('method')
        batch_op.drop_column('checkout_url')

    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_events_payment_id'))

    op.drop_table('provider_events')
    with op.batch_alter_table('mandates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mandates_user_id'))

    op.drop_table('mandates')
    with op.batch_alter_table('chargebacks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chargebacks_payment_id'))

    op.drop_table('chargebacks')
