"""business desk: the totals of each finished month (subscribers and their movements, the
money per kind, provider and plan), a subscriber's months in order, payments by paid_at

Revision ID: 9e4b7c2d1a05
Revises: 7a1c0e5d2b44
Create Date: 2026-11-25 10:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9e4b7c2d1a05'
down_revision = '7a1c0e5d2b44'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('business_month_totals',
    sa.Column('month_no', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('subscribers', sa.Integer(), nullable=False),
    sa.Column('mrr_cents', sa.BigInteger(), nullable=False),
    sa.Column('new', sa.Integer(), nullable=False),
    sa.Column('mrr_new', sa.BigInteger(), nullable=False),
    sa.Column('reactivated', sa.Integer(), nullable=False),
    sa.Column('mrr_reactivation', sa.BigInteger(), nullable=False),
    sa.Column('mrr_expansion', sa.BigInteger(), nullable=False),
    sa.Column('mrr_contraction', sa.BigInteger(), nullable=False),
    sa.Column('stayed', sa.Integer(), nullable=False),
    sa.Column('mrr_stayed_before', sa.BigInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('month_no', name=op.f('pk_business_month_totals'))
    )
    op.create_table('business_revenue_months',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('vat_cents', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_business_revenue_months_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_business_revenue_months'))
    )
    with op.batch_alter_table('business_revenue_months', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_business_revenue_months_month_no'), ['month_no'], unique=False)
    with op.batch_alter_table('business_subscription_months', schema=None) as batch_op:
        batch_op.create_index('ix_business_subscription_months_subscriber_month', ['subscriber_key', 'month_no'], unique=False)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_paid_at'), ['paid_at'], unique=False)


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_paid_at'))
    with op.batch_alter_table('business_subscription_months', schema=None) as batch_op:
        batch_op.drop_index('ix_business_subscription_months_subscriber_month')
    with op.batch_alter_table('business_revenue_months', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_business_revenue_months_month_no'))
    op.drop_table('business_revenue_months')
    op.drop_table('business_month_totals')
