"""jobs: the run ledger and work keys; dispatch (locked mailing lists); renewal charges and
orders; grace on subscriptions

Revision ID: a2d7d03c1ae6
Revises: 3d3ba518c208
Create Date: 2026-11-25 03:52:43.450270

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a2d7d03c1ae6'
down_revision = '3d3ba518c208'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_claims',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_job_claims'))
    )
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=160), nullable=False),
    sa.Column('status', sa.Enum('running', 'finished', 'failed', name='jobrunstatus', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('job', 'period', name=op.f('uq_job_runs_job_period'))
    )
    op.create_table('dispatches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_by_id', sa.Integer(), nullable=True),
    sa.Column('subscriptions', sa.Integer(), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('stock_copies', sa.Integer(), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_dispatches_issue_id_issues')),
    sa.ForeignKeyConstraint(['locked_by_id'], ['users.id'], name=op.f('fk_dispatches_locked_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatches')),
    sa.UniqueConstraint('issue_id', name=op.f('uq_dispatches_issue_id'))
    )
    op.create_table('dispatch_entries',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('digital', sa.Boolean(), nullable=False),
    sa.Column('graced', sa.Boolean(), nullable=False),
    sa.Column('lock_token', sa.String(length=32), nullable=False),
    sa.Column('mailed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_dispatch_entries_issue_id_issues')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_dispatch_entries_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_dispatch_entries_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'subscription_id', name=op.f('pk_dispatch_entries'))
    )
    with op.batch_alter_table('dispatch_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_entries_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('dispatch_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('group_no', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('postcode', sa.String(length=12), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_dispatch_lines_issue_id_issues')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_dispatch_lines_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_dispatch_lines_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_lines')),
    sa.UniqueConstraint('issue_id', 'subscription_id', 'group_no', name=op.f('uq_dispatch_lines_issue_id_subscription_id_group_no'))
    )
    with op.batch_alter_table('dispatch_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_lines_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('renewal_charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('status', sa.Enum('due', 'charging', 'paid', 'pending', 'failed', 'needs_customer', name='chargestatus', native_enum=False, length=32), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('claimed_by', sa.String(length=160), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_renewal_charges_order_id_orders')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_renewal_charges_payment_id_payments')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_renewal_charges_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_renewal_charges')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_renewal_charges_idempotency_key')),
    sa.UniqueConstraint('subscription_id', 'term', 'attempt', name=op.f('uq_renewal_charges_subscription_id_term_attempt'))
    )
    with op.batch_alter_table('renewal_charges', schema=None) as batch_op:
        batch_op.create_index('ix_renewal_charges_status_due', ['status', 'due_at'], unique=False)

    op.create_table('renewal_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_renewal_orders_order_id_orders')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_renewal_orders_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_renewal_orders_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_renewal_orders')),
    sa.UniqueConstraint('order_id', name=op.f('uq_renewal_orders_order_id')),
    sa.UniqueConstraint('subscription_id', 'term', name=op.f('uq_renewal_orders_subscription_id_term'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('graced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('grace_issues_used', sa.Integer(), server_default='0', nullable=False))



def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('grace_issues_used')
        batch_op.drop_column('graced_at')

    op.drop_table('renewal_orders')
    with op.batch_alter_table('renewal_charges', schema=None) as batch_op:
        batch_op.drop_index('ix_renewal_charges_status_due')

    op.drop_table('renewal_charges')
    with op.batch_alter_table('dispatch_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatch_lines_subscription_id'))

    op.drop_table('dispatch_lines')
    with op.batch_alter_table('dispatch_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatch_entries_subscription_id'))

    op.drop_table('dispatch_entries')
    op.drop_table('dispatches')
    op.drop_table('job_runs')
    op.drop_table('job_claims')
