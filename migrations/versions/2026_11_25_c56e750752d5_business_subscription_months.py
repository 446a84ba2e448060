"""business desk: one row per subscription per month it was counted in (the roll-up)

Revision ID: c56e750752d5
Revises: a2d7d03c1ae6
Create Date: 2026-11-25 03:53:06.230210

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c56e750752d5'
down_revision = 'a2d7d03c1ae6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('business_subscription_months',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month_no', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_key', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('complimentary', sa.Boolean(), nullable=False),
    sa.Column('mrr_cents', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_business_subscription_months_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_business_subscription_months_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_business_subscription_months')),
    sa.UniqueConstraint('month_no', 'subscription_id', name=op.f('uq_business_subscription_months_month_no_subscription_id'))
    )
    with op.batch_alter_table('business_subscription_months', schema=None) as batch_op:
        batch_op.create_index('ix_business_subscription_months_month_subscriber', ['month_no', 'subscriber_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_business_subscription_months_subscription_id'), ['subscription_id'], unique=False)



def downgrade():
    with op.batch_alter_table('business_subscription_months', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_business_subscription_months_subscription_id'))
        batch_op.drop_index('ix_business_subscription_months_month_subscriber')

    op.drop_table('business_subscription_months')
