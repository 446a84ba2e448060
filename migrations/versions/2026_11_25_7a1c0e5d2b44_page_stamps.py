"""page stamps: the validity stamp of each user's cached account page (user id 0: everyone's),
written in the transaction of every change the page shows (magazine.pagecache)

Revision ID: 7a1c0e5d2b44
Revises: 3f9b3fda452e
Create Date: 2026-11-25 10:20:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7a1c0e5d2b44'
down_revision = '3f9b3fda452e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('page_stamps',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('stamp', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_page_stamps'))
    )


def downgrade():
    op.drop_table('page_stamps')
