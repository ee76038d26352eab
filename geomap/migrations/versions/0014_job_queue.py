"""Plan jobs as a queue held in PostgreSQL: leases, attempts, the job's input and actor.

Revision ID: 0014_job_queue
Revises: 0013_roles
Create Date: 2026-11-27

A request only inserts a ``queued`` row; a fixed number of runner threads per service
process claim the oldest queued job with ``SELECT … FOR UPDATE SKIP LOCKED`` and hold it
under a lease (``lease_until``) that they renew while it runs. A job whose lease ran out
(its runner died) is queued again or, after ``attempts`` runs, failed
(``geomap.planning.jobs``). ``input`` is the whole question (an uploaded layer
included), so any process can run it; ``actor`` is who created the job, named in the
audit rows of its life. The partial indexes keep claiming and the per-owner count
cheap however many finished jobs the table holds.
"""

from __future__ import annotations

from alembic import op

revision = "0014_job_queue"
down_revision = "0013_roles"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE plan_jobs
    ADD COLUMN input       jsonb,
    ADD COLUMN actor       jsonb,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0);
CREATE INDEX plan_jobs_queued_idx ON plan_jobs (created_at) WHERE status = 'queued';
CREATE INDEX plan_jobs_active_idx ON plan_jobs (owner) WHERE status IN ('queued', 'running');
"""

DOWNGRADE = """
DROP INDEX IF EXISTS plan_jobs_active_idx;
DROP INDEX IF EXISTS plan_jobs_queued_idx;
ALTER TABLE plan_jobs
    DROP COLUMN IF EXISTS attempts,
    DROP COLUMN IF EXISTS lease_until,
    DROP COLUMN IF EXISTS actor,
    DROP COLUMN IF EXISTS input;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
