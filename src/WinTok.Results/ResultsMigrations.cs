namespace WinTok.Results;

/// <summary>One schema change, written once per provider. Append new ones; never edit an applied one.</summary>
internal sealed record ResultsMigration(int Version, string Name, string Postgres, string Sqlite);

/// <summary>The schema history of the results database.</summary>
internal static class ResultsMigrations
{
    public static IReadOnlyList<ResultsMigration> All { get; } =
    [
        new(1, "jobs, partitions, item failures, metrics",
            Postgres: """
                CREATE TABLE jobs (
                    id uuid PRIMARY KEY,
                    kind text NOT NULL,
                    status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
                    spec jsonb NOT NULL,
                    partition_count integer NOT NULL DEFAULT 0,
                    error text NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    started_at timestamptz NULL,
                    finished_at timestamptz NULL
                );
                CREATE INDEX jobs_created_at ON jobs (created_at DESC);

                CREATE TABLE partitions (
                    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    partition_index integer NOT NULL,
                    status text NOT NULL CHECK (status IN ('pending', 'running', 'committed', 'failed')),
                    attempt integer NOT NULL DEFAULT 0,
                    worker text NULL,
                    lease_expires_at timestamptz NULL,
                    heartbeat_at timestamptz NULL,
                    started_at timestamptz NULL,
                    committed_at timestamptz NULL,
                    duration_ms bigint NULL,
                    shard_path text NULL,
                    row_count bigint NULL,
                    byte_count bigint NULL,
                    sha256 text NULL,
                    failures_count integer NOT NULL DEFAULT 0,
                    error text NULL,
                    PRIMARY KEY (job_id, partition_index)
                );
                CREATE INDEX partitions_job_status ON partitions (job_id, status);

                CREATE TABLE item_failures (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    job_id uuid NOT NULL,
                    partition_index integer NOT NULL,
                    item_key text NOT NULL,
                    source text NOT NULL,
                    reason text NOT NULL,
                    created_at timestamptz NOT NULL,
                    FOREIGN KEY (job_id, partition_index) REFERENCES partitions (job_id, partition_index) ON DELETE CASCADE,
                    UNIQUE (job_id, partition_index, item_key)
                );

                CREATE TABLE metrics (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    checkpoint text NOT NULL,
                    metric_name text NOT NULL,
                    metric_value double precision NOT NULL,
                    details jsonb NULL,
                    created_at timestamptz NOT NULL
                );
                CREATE INDEX metrics_job ON metrics (job_id);
                CREATE INDEX metrics_checkpoint_name ON metrics (checkpoint, metric_name);
                """,
            Sqlite: """
                CREATE TABLE jobs (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
                    spec TEXT NOT NULL,
                    partition_count INTEGER NOT NULL DEFAULT 0,
                    error TEXT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    started_at TEXT NULL,
                    finished_at TEXT NULL
                );
                CREATE INDEX jobs_created_at ON jobs (created_at DESC);

                CREATE TABLE partitions (
                    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    partition_index INTEGER NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'committed', 'failed')),
                    attempt INTEGER NOT NULL DEFAULT 0,
                    worker TEXT NULL,
                    lease_expires_at TEXT NULL,
                    heartbeat_at TEXT NULL,
                    started_at TEXT NULL,
                    committed_at TEXT NULL,
                    duration_ms INTEGER NULL,
                    shard_path TEXT NULL,
                    row_count INTEGER NULL,
                    byte_count INTEGER NULL,
                    sha256 TEXT NULL,
                    failures_count INTEGER NOT NULL DEFAULT 0,
                    error TEXT NULL,
                    PRIMARY KEY (job_id, partition_index)
                );
                CREATE INDEX partitions_job_status ON partitions (job_id, status);

                CREATE TABLE item_failures (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    job_id TEXT NOT NULL,
                    partition_index INTEGER NOT NULL,
                    item_key TEXT NOT NULL,
                    source TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    FOREIGN KEY (job_id, partition_index) REFERENCES partitions (job_id, partition_index) ON DELETE CASCADE,
                    UNIQUE (job_id, partition_index, item_key)
                );

                CREATE TABLE metrics (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    checkpoint TEXT NOT NULL,
                    metric_name TEXT NOT NULL,
                    metric_value REAL NOT NULL,
                    details TEXT NULL,
                    created_at TEXT NOT NULL
                );
                CREATE INDEX metrics_job ON metrics (job_id);
                CREATE INDEX metrics_checkpoint_name ON metrics (checkpoint, metric_name);
                """),
        new(2, "partition specs, commit records and item progress",
            Postgres: """
                ALTER TABLE partitions ADD COLUMN spec jsonb NULL;
                ALTER TABLE partitions ADD COLUMN result jsonb NULL;
                ALTER TABLE partitions ADD COLUMN items integer NOT NULL DEFAULT 0;
                ALTER TABLE partitions ADD COLUMN items_done integer NOT NULL DEFAULT 0;
                """,
            Sqlite: """
                ALTER TABLE partitions ADD COLUMN spec TEXT NULL;
                ALTER TABLE partitions ADD COLUMN result TEXT NULL;
                ALTER TABLE partitions ADD COLUMN items INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE partitions ADD COLUMN items_done INTEGER NOT NULL DEFAULT 0;
                """),
        new(3, "evaluations: what each evaluation measured, on what, under which protocol",
            Postgres: """
                CREATE TABLE evaluations (
                    job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                    checkpoint_sha256 text NOT NULL,
                    checkpoint_path text NOT NULL,
                    model_kind text NOT NULL,
                    dataset text NOT NULL,
                    dataset_name text NOT NULL,
                    preprocessing text NOT NULL,
                    protocol text NOT NULL,
                    image_count bigint NOT NULL,
                    schedule_name text NULL,
                    training_epoch integer NULL,
                    training_iteration bigint NULL,
                    created_at timestamptz NOT NULL
                );
                CREATE INDEX evaluations_checkpoint ON evaluations (checkpoint_sha256, protocol);
                CREATE INDEX evaluations_schedule ON evaluations (schedule_name, created_at);
                """,
            Sqlite: """
                CREATE TABLE evaluations (
                    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                    checkpoint_sha256 TEXT NOT NULL,
                    checkpoint_path TEXT NOT NULL,
                    model_kind TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    dataset_name TEXT NOT NULL,
                    preprocessing TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    image_count INTEGER NOT NULL,
                    schedule_name TEXT NULL,
                    training_epoch INTEGER NULL,
                    training_iteration INTEGER NULL,
                    created_at TEXT NOT NULL
                );
                CREATE INDEX evaluations_checkpoint ON evaluations (checkpoint_sha256, protocol);
                CREATE INDEX evaluations_schedule ON evaluations (schedule_name, created_at);
                """),
        new(4, "schedules: definitions, their slots and the jobs each slot submitted, regressions, the scheduler lease",
            Postgres: """
                CREATE TABLE schedules (
                    name text PRIMARY KEY,
                    cron text NOT NULL,
                    time_zone text NOT NULL,
                    target_mode text NOT NULL CHECK (target_mode IN ('checkpoint', 'newest', 'every')),
                    target text NOT NULL,
                    evaluation jsonb NOT NULL,
                    missed_policy text NOT NULL CHECK (missed_policy IN ('run-once', 'skip')),
                    baseline text NULL,
                    thresholds jsonb NOT NULL,
                    webhook_url text NULL,
                    paused boolean NOT NULL DEFAULT false,
                    watermark_at timestamptz NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                );

                CREATE TABLE schedule_slots (
                    schedule_name text NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
                    slot_at timestamptz NOT NULL,
                    trigger_kind text NOT NULL CHECK (trigger_kind IN ('cron', 'manual')),
                    outcome text NOT NULL CHECK (outcome IN ('submitted', 'nothing-new', 'missed', 'skipped', 'failed')),
                    detail text NULL,
                    scheduler text NOT NULL,
                    recorded_at timestamptz NOT NULL,
                    PRIMARY KEY (schedule_name, slot_at)
                );

                CREATE TABLE schedule_jobs (
                    job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                    schedule_name text NOT NULL,
                    slot_at timestamptz NOT NULL,
                    checkpoint_location text NOT NULL,
                    checkpoint_version text NOT NULL,
                    checkpoint_sha256 text NOT NULL,
                    protocol text NOT NULL,
                    published boolean NOT NULL DEFAULT false,
                    created_at timestamptz NOT NULL,
                    FOREIGN KEY (schedule_name, slot_at) REFERENCES schedule_slots (schedule_name, slot_at) ON DELETE CASCADE
                );
                CREATE INDEX schedule_jobs_checkpoint ON schedule_jobs (schedule_name, checkpoint_location, checkpoint_version);
                CREATE INDEX schedule_jobs_content ON schedule_jobs (checkpoint_sha256, protocol);
                CREATE INDEX schedule_jobs_unpublished ON schedule_jobs (created_at) WHERE NOT published;

                CREATE TABLE schedule_checkpoints (
                    schedule_name text NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
                    checkpoint_location text NOT NULL,
                    checkpoint_version text NOT NULL,
                    checkpoint_sha256 text NOT NULL,
                    protocol text NOT NULL,
                    evaluated_by uuid NULL,
                    recorded_at timestamptz NOT NULL,
                    PRIMARY KEY (schedule_name, checkpoint_location, checkpoint_version)
                );

                CREATE TABLE regressions (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    schedule_name text NULL,
                    checkpoint_sha256 text NOT NULL,
                    metric text NOT NULL,
                    value double precision NOT NULL,
                    baseline_value double precision NOT NULL,
                    baseline_job_id uuid NULL,
                    threshold double precision NOT NULL,
                    direction text NOT NULL CHECK (direction IN ('lower', 'higher')),
                    created_at timestamptz NOT NULL,
                    notified_at timestamptz NULL,
                    UNIQUE (job_id, metric)
                );
                CREATE INDEX regressions_schedule ON regressions (schedule_name, created_at);
                CREATE INDEX regressions_unnotified ON regressions (created_at) WHERE notified_at IS NULL;

                CREATE TABLE scheduler_lease (
                    name text PRIMARY KEY,
                    holder text NOT NULL,
                    expires_at timestamptz NOT NULL,
                    acquired_at timestamptz NOT NULL
                );
                """,
            Sqlite: """
                CREATE TABLE schedules (
                    name TEXT PRIMARY KEY,
                    cron TEXT NOT NULL,
                    time_zone TEXT NOT NULL,
                    target_mode TEXT NOT NULL CHECK (target_mode IN ('checkpoint', 'newest', 'every')),
                    target TEXT NOT NULL,
                    evaluation TEXT NOT NULL,
                    missed_policy TEXT NOT NULL CHECK (missed_policy IN ('run-once', 'skip')),
                    baseline TEXT NULL,
                    thresholds TEXT NOT NULL,
                    webhook_url TEXT NULL,
                    paused INTEGER NOT NULL DEFAULT 0,
                    watermark_at TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                );

                CREATE TABLE schedule_slots (
                    schedule_name TEXT NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
                    slot_at TEXT NOT NULL,
                    trigger_kind TEXT NOT NULL CHECK (trigger_kind IN ('cron', 'manual')),
                    outcome TEXT NOT NULL CHECK (outcome IN ('submitted', 'nothing-new', 'missed', 'skipped', 'failed')),
                    detail TEXT NULL,
                    scheduler TEXT NOT NULL,
                    recorded_at TEXT NOT NULL,
                    PRIMARY KEY (schedule_name, slot_at)
                );

                CREATE TABLE schedule_jobs (
                    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                    schedule_name TEXT NOT NULL,
                    slot_at TEXT NOT NULL,
                    checkpoint_location TEXT NOT NULL,
                    checkpoint_version TEXT NOT NULL,
                    checkpoint_sha256 TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    published INTEGER NOT NULL DEFAULT 0,
                    created_at TEXT NOT NULL,
                    FOREIGN KEY (schedule_name, slot_at) REFERENCES schedule_slots (schedule_name, slot_at) ON DELETE CASCADE
                );
                CREATE INDEX schedule_jobs_checkpoint ON schedule_jobs (schedule_name, checkpoint_location, checkpoint_version);
                CREATE INDEX schedule_jobs_content ON schedule_jobs (checkpoint_sha256, protocol);
                CREATE INDEX schedule_jobs_unpublished ON schedule_jobs (created_at) WHERE NOT published;

                CREATE TABLE schedule_checkpoints (
                    schedule_name TEXT NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
                    checkpoint_location TEXT NOT NULL,
                    checkpoint_version TEXT NOT NULL,
                    checkpoint_sha256 TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    evaluated_by TEXT NULL,
                    recorded_at TEXT NOT NULL,
                    PRIMARY KEY (schedule_name, checkpoint_location, checkpoint_version)
                );

                CREATE TABLE regressions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    schedule_name TEXT NULL,
                    checkpoint_sha256 TEXT NOT NULL,
                    metric TEXT NOT NULL,
                    value REAL NOT NULL,
                    baseline_value REAL NOT NULL,
                    baseline_job_id TEXT NULL,
                    threshold REAL NOT NULL,
                    direction TEXT NOT NULL CHECK (direction IN ('lower', 'higher')),
                    created_at TEXT NOT NULL,
                    notified_at TEXT NULL,
                    UNIQUE (job_id, metric)
                );
                CREATE INDEX regressions_schedule ON regressions (schedule_name, created_at);
                CREATE INDEX regressions_unnotified ON regressions (created_at) WHERE notified_at IS NULL;

                CREATE TABLE scheduler_lease (
                    name TEXT PRIMARY KEY,
                    holder TEXT NOT NULL,
                    expires_at TEXT NOT NULL,
                    acquired_at TEXT NOT NULL
                );
                """),
        new(5, "workers and their heartbeats; each job's trace context",
            Postgres: """
                CREATE TABLE workers (
                    name text PRIMARY KEY,
                    host text NOT NULL,
                    pid integer NOT NULL,
                    started_at timestamptz NOT NULL,
                    heartbeat_at timestamptz NOT NULL,
                    state text NOT NULL CHECK (state IN ('idle', 'busy', 'stopping')),
                    job_id uuid NULL,
                    partition integer NULL,
                    images_per_second double precision NULL,
                    gpu_memory_mib bigint NULL
                );
                CREATE INDEX workers_heartbeat ON workers (heartbeat_at DESC);
                ALTER TABLE jobs ADD COLUMN trace_parent text NULL;
                """,
            Sqlite: """
                CREATE TABLE workers (
                    name TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    started_at TEXT NOT NULL,
                    heartbeat_at TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('idle', 'busy', 'stopping')),
                    job_id TEXT NULL,
                    partition INTEGER NULL,
                    images_per_second REAL NULL,
                    gpu_memory_mib INTEGER NULL
                );
                CREATE INDEX workers_heartbeat ON workers (heartbeat_at DESC);
                ALTER TABLE jobs ADD COLUMN trace_parent TEXT NULL;
                """),
        new(6, "training_metrics: a training run's losses and learning rates by iteration",
            Postgres: """
                CREATE TABLE training_metrics (
                    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    iteration bigint NOT NULL,
                    name text NOT NULL,
                    value double precision NOT NULL,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (job_id, name, iteration)
                );
                CREATE INDEX training_metrics_iteration ON training_metrics (job_id, iteration);
                """,
            Sqlite: """
                CREATE TABLE training_metrics (
                    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    iteration INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    value REAL NOT NULL,
                    created_at TEXT NOT NULL,
                    PRIMARY KEY (job_id, name, iteration)
                );
                CREATE INDEX training_metrics_iteration ON training_metrics (job_id, iteration);
                """),
    ];
}
