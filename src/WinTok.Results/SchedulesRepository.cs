using System.Data.Common;
using Dapper;

namespace WinTok.Results;

/// <summary>
/// Evaluation schedules, their slots and the jobs each slot submitted, the scheduler lease, and regressions. A slot is
/// (schedule, time): its primary key makes a second recording fail, and <see cref="RecordSlotAsync"/> writes it in the
/// same transaction as the jobs it submits, so a slot and its jobs are recorded together or not at all, whichever
/// scheduler replica gets there first. Every method is one transaction in the database pipeline and idempotent.
/// </summary>
public sealed class SchedulesRepository(ResultsDatabase database, ResultsRepository results, TimeProvider timeProvider)
{
    /// <summary>The one lease row all scheduler replicas compete for.</summary>
    private const string LeaseName = "scheduler";

    // Serialises slot recordings on PostgreSQL ("WTSched" in ASCII); SQLite's BEGIN IMMEDIATE already does.
    private const long SlotLockKey = 0x5754536368656400;

    private const string ScheduleColumns = """
        name, cron, time_zone, target_mode, target, evaluation AS evaluation_json, missed_policy, baseline,
        thresholds AS thresholds_json, webhook_url, paused, watermark_at, created_at, updated_at
        """;

    private const string RegressionColumns = """
        id, job_id, schedule_name, checkpoint_sha256, metric, value, baseline_value, baseline_job_id, threshold, direction,
        created_at, notified_at
        """;

    /// <summary>Records a new schedule; its first slot is the first cron time after now. False when the name is taken.</summary>
    public Task<bool> AddAsync(NewSchedule schedule, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            return await database.ExecuteAsync(connection, transaction, $"""
                INSERT INTO schedules (name, cron, time_zone, target_mode, target, evaluation, missed_policy, baseline, thresholds,
                                       webhook_url, paused, watermark_at, created_at, updated_at)
                VALUES (@Name, @Cron, @TimeZone, @TargetMode, @Target, {database.Json("@EvaluationJson")}, @MissedPolicy, @Baseline,
                        {database.Json("@ThresholdsJson")}, @WebhookUrl, @Paused, @Now, @Now, @Now)
                ON CONFLICT (name) DO NOTHING
                """, new
                {
                    schedule.Name, schedule.Cron, schedule.TimeZone, schedule.TargetMode, schedule.Target, schedule.EvaluationJson,
                    schedule.MissedPolicy, schedule.Baseline, schedule.ThresholdsJson, schedule.WebhookUrl, schedule.Paused, Now = now,
                }, token) == 1;
        }, cancellationToken);

    public Task<ScheduleRecord?> GetAsync(string name, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.QuerySingleOrDefaultAsync<ScheduleRecord>(database.Command(
            $"SELECT {ScheduleColumns} FROM schedules WHERE name = @Name", new { Name = name }, transaction, token)), cancellationToken);

    /// <summary>Every schedule, by name.</summary>
    public Task<IReadOnlyList<ScheduleRecord>> ListAsync(CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<ScheduleRecord>>(async (connection, transaction, token) => (await connection.QueryAsync<ScheduleRecord>(
            database.Command($"SELECT {ScheduleColumns} FROM schedules ORDER BY name", null, transaction, token))).ToList(), cancellationToken);

    /// <summary>
    /// Pauses or resumes a schedule. Resuming moves its watermark to now: slots that passed while it was paused were
    /// declined, not missed, so none of them fires. False when there is no such schedule or it already was so.
    /// </summary>
    public Task<bool> SetPausedAsync(string name, bool paused, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            return await database.ExecuteAsync(connection, transaction, """
                UPDATE schedules SET paused = @Paused, updated_at = @Now,
                       watermark_at = CASE WHEN @Paused THEN watermark_at ELSE @Now END
                WHERE name = @Name AND paused <> @Paused
                """, new { Name = name, Paused = paused, Now = now }, token) == 1;
        }, cancellationToken);

    /// <summary>Deletes a schedule with its slots; its jobs, evaluations and regressions stay (they name it).</summary>
    public Task<bool> RemoveAsync(string name, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) => await database.ExecuteAsync(connection, transaction,
            "DELETE FROM schedules WHERE name = @Name", new { Name = name }, token) == 1, cancellationToken);

    /// <summary>
    /// Takes the scheduler lease for <paramref name="holder"/> until <paramref name="duration"/> from now when it is free,
    /// expired or already <paramref name="holder"/>'s (a renewal). Returns when the holder acquired it (unchanged by
    /// renewals), or null when another replica holds it.
    /// </summary>
    public Task<DateTimeOffset?> TryAcquireLeaseAsync(string holder, TimeSpan duration, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            return await connection.QuerySingleOrDefaultAsync<DateTimeOffset?>(database.Command("""
                INSERT INTO scheduler_lease (name, holder, expires_at, acquired_at) VALUES (@Name, @Holder, @Until, @Now)
                ON CONFLICT (name) DO UPDATE
                SET holder = excluded.holder, expires_at = excluded.expires_at,
                    acquired_at = CASE WHEN scheduler_lease.holder = excluded.holder THEN scheduler_lease.acquired_at ELSE excluded.acquired_at END
                WHERE scheduler_lease.holder = excluded.holder OR scheduler_lease.expires_at < excluded.acquired_at
                RETURNING acquired_at
                """, new { Name = LeaseName, Holder = holder, Until = now + duration, Now = now }, transaction, token));
        }, cancellationToken);

    /// <summary>Gives the lease up (a stopping replica), so another replica takes over at once.</summary>
    public Task ReleaseLeaseAsync(string holder, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => database.ExecuteAsync(connection, transaction, """
            UPDATE scheduler_lease SET expires_at = @Now WHERE name = @Name AND holder = @Holder
            """, new { Name = LeaseName, Holder = holder, Now = timeProvider.GetUtcNow() }, token), cancellationToken);

    /// <summary>
    /// Records a slot and the jobs it submits in one transaction: the slot row first (its primary key refuses a second
    /// recording, and then nothing is written), then each job with its partitions and its schedule link, unpublished;
    /// a cron slot also moves the schedule's watermark. With <paramref name="leaseHolder"/>, only while that replica
    /// still holds the scheduler lease (a replica that stalled past its lease writes nothing).
    /// </summary>
    public Task<SlotRecordResult> RecordSlotAsync(NewSlot slot, IReadOnlyList<ScheduledJob> jobs, IReadOnlyList<RecognisedCheckpoint> recognised,
        string? leaseHolder, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            if (!await EnterSlotSectionAsync(connection, transaction, leaseHolder, now, token)) return new SlotRecordResult(SlotRecording.LeaseLost, []);

            var seen = (await SeenAsync(connection, transaction, slot.ScheduleName, token)).ToHashSet();
            var recorded = jobs.Where(j => !j.SkipIfSeen || !seen.Contains(new SeenCheckpoint(j.CheckpointLocation, j.CheckpointVersion))).ToList();
            var outcome = slot.Outcome == SlotOutcome.Submitted && recorded.Count == 0 ? SlotOutcome.NothingNew : slot.Outcome;
            var inserted = await database.ExecuteAsync(connection, transaction, """
                INSERT INTO schedule_slots (schedule_name, slot_at, trigger_kind, outcome, detail, scheduler, recorded_at)
                VALUES (@ScheduleName, @SlotAt, @Trigger, @Outcome, @Detail, @Scheduler, @Now)
                ON CONFLICT (schedule_name, slot_at) DO NOTHING
                """, new { slot.ScheduleName, slot.SlotAt, slot.Trigger, Outcome = outcome, slot.Detail, slot.Scheduler, Now = now }, token);
            if (inserted == 0) return new SlotRecordResult(SlotRecording.AlreadyRecorded, []);

            foreach (var job in recorded)
            {
                await results.InsertJobAsync(connection, transaction, job.Job, now, token);
                await results.InsertPartitionsAsync(connection, transaction, job.Job.Id, job.Partitions, now, token);
                await database.ExecuteAsync(connection, transaction, """
                    INSERT INTO schedule_jobs (job_id, schedule_name, slot_at, checkpoint_location, checkpoint_version, checkpoint_sha256,
                                               protocol, published, created_at)
                    VALUES (@JobId, @ScheduleName, @SlotAt, @Location, @Version, @Sha256, @Protocol, @Published, @Now)
                    """, new
                    {
                        JobId = job.Job.Id, slot.ScheduleName, slot.SlotAt, Location = job.CheckpointLocation, Version = job.CheckpointVersion,
                        Sha256 = job.CheckpointSha256, job.Protocol, Published = false, Now = now,
                    }, token);
            }
            await database.ExecuteAsync(connection, transaction, """
                INSERT INTO schedule_checkpoints (schedule_name, checkpoint_location, checkpoint_version, checkpoint_sha256, protocol, evaluated_by, recorded_at)
                VALUES (@ScheduleName, @Location, @Version, @Sha256, @Protocol, @EvaluatedBy, @Now)
                ON CONFLICT (schedule_name, checkpoint_location, checkpoint_version) DO NOTHING
                """, recognised.Select(r => new { slot.ScheduleName, r.Location, r.Version, r.Sha256, r.Protocol, r.EvaluatedBy, Now = now }), token);
            if (slot.Trigger == SlotTrigger.Cron) await AdvanceWatermarkAsync(connection, transaction, slot.ScheduleName, slot.SlotAt, token);
            return new SlotRecordResult(SlotRecording.Recorded, recorded.Select(j => j.Job.Id).ToList());
        }, cancellationToken);

    /// <summary>
    /// Records slots that fire nothing (missed, skipped) in one transaction and moves the watermark past them; slots
    /// already recorded are left alone. False (nothing written) when <paramref name="leaseHolder"/> lost the lease.
    /// </summary>
    public Task<bool> RecordIdleSlotsAsync(IReadOnlyList<NewSlot> slots, string? leaseHolder, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            if (!await EnterSlotSectionAsync(connection, transaction, leaseHolder, now, token)) return false;
            await database.ExecuteAsync(connection, transaction, """
                INSERT INTO schedule_slots (schedule_name, slot_at, trigger_kind, outcome, detail, scheduler, recorded_at)
                VALUES (@ScheduleName, @SlotAt, @Trigger, @Outcome, @Detail, @Scheduler, @Now)
                ON CONFLICT (schedule_name, slot_at) DO NOTHING
                """, slots.Select(s => new { s.ScheduleName, s.SlotAt, s.Trigger, s.Outcome, s.Detail, s.Scheduler, Now = now }), token);
            foreach (var latest in slots.Where(s => s.Trigger == SlotTrigger.Cron).GroupBy(s => s.ScheduleName))
                await AdvanceWatermarkAsync(connection, transaction, latest.Key, latest.Max(s => s.SlotAt), token);
            return true;
        }, cancellationToken);

    /// <summary>Moves a schedule's watermark forward without recording a slot (slots too old to record one by one).</summary>
    public Task AdvanceWatermarkAsync(string name, DateTimeOffset to, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => AdvanceWatermarkAsync(connection, transaction, name, to, token), cancellationToken);

    /// <summary>The file versions the schedule has dealt with: submitted with a job that is not failed or cancelled, or recognised as evaluated.</summary>
    public Task<IReadOnlyList<SeenCheckpoint>> ListSeenCheckpointsAsync(string scheduleName, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => SeenAsync(connection, transaction, scheduleName, token), cancellationToken);

    /// <summary>
    /// A job that evaluated (or is evaluating) this content under this protocol on this dataset: a recorded evaluation,
    /// or a live job of the schedule. Null when there is none.
    /// </summary>
    public Task<Guid?> FindEvaluationAsync(string scheduleName, string sha256, string protocol, string dataset, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.QueryFirstOrDefaultAsync<Guid?>(database.Command("""
            SELECT job_id FROM evaluations WHERE checkpoint_sha256 = @Sha256 AND protocol = @Protocol AND dataset = @Dataset
            UNION ALL
            SELECT s.job_id FROM schedule_jobs s JOIN jobs j ON j.id = s.job_id
            WHERE s.schedule_name = @ScheduleName AND s.checkpoint_sha256 = @Sha256 AND s.protocol = @Protocol
              AND j.status NOT IN ('failed', 'cancelled')
            """, new { ScheduleName = scheduleName, Sha256 = sha256, Protocol = protocol, Dataset = dataset }, transaction, token)), cancellationToken);

    /// <summary>Marks jobs' messages as published (after the queue confirmed them).</summary>
    public Task MarkPublishedAsync(IReadOnlyCollection<Guid> jobIds, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => database.ExecuteAsync(connection, transaction,
            "UPDATE schedule_jobs SET published = @Published WHERE job_id = @JobId",
            jobIds.Select(id => new { JobId = id, Published = true }), token), cancellationToken);

    /// <summary>
    /// Scheduled jobs recorded before <paramref name="recordedBefore"/> whose messages were never published (a scheduler
    /// stopped between its commit and its publish), with their open partitions.
    /// </summary>
    public Task<IReadOnlyList<JobToPublish>> ListUnpublishedAsync(DateTimeOffset recordedBefore, CancellationToken cancellationToken) =>
        OpenPartitionsAsync("NOT s.published AND s.created_at < @Before", new { Before = recordedBefore }, cancellationToken);

    /// <summary>
    /// Every queued or running scheduled job with its open partitions: an in-process queue loses its messages with its
    /// process, so a scheduler on one machine republishes these when it starts (a partition already done, or taken,
    /// is recognised by its claim: republishing repeats no work).
    /// </summary>
    public Task<IReadOnlyList<JobToPublish>> ListUnfinishedAsync(CancellationToken cancellationToken) =>
        OpenPartitionsAsync("j.status IN ('queued', 'running')", null, cancellationToken);

    /// <summary>The newest slots of a schedule first, with the jobs each submitted.</summary>
    public Task<IReadOnlyList<SlotRecord>> ListSlotsAsync(string scheduleName, int limit, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<SlotRecord>>(async (connection, transaction, token) =>
        {
            var slots = (await connection.QueryAsync<SlotRecord>(database.Command("""
                SELECT schedule_name, slot_at, trigger_kind, outcome, detail, scheduler, recorded_at
                FROM schedule_slots WHERE schedule_name = @Name ORDER BY slot_at DESC LIMIT @Limit
                """, new { Name = scheduleName, Limit = limit }, transaction, token))).ToList();
            var jobs = await connection.QueryAsync<SlotJob>(database.Command("""
                SELECT job_id, slot_at FROM schedule_jobs WHERE schedule_name = @Name ORDER BY created_at
                """, new { Name = scheduleName }, transaction, token));
            var bySlot = jobs.ToLookup(j => j.SlotAt, j => j.JobId);
            foreach (var slot in slots) slot.Jobs = bySlot[slot.SlotAt].ToList();
            return slots;
        }, cancellationToken);

    /// <summary>
    /// Records regressions of one evaluation; a metric already recorded for the job is left alone (a repeated hook call).
    /// Returns the rows this call inserted.
    /// </summary>
    public Task<IReadOnlyList<RegressionRecord>> RecordRegressionsAsync(IReadOnlyCollection<NewRegression> regressions, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<RegressionRecord>>(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var inserted = new List<RegressionRecord>();
            foreach (var regression in regressions)
            {
                var row = await connection.QuerySingleOrDefaultAsync<RegressionRecord>(database.Command($"""
                    INSERT INTO regressions (job_id, schedule_name, checkpoint_sha256, metric, value, baseline_value, baseline_job_id, threshold,
                                             direction, created_at)
                    VALUES (@JobId, @ScheduleName, @CheckpointSha256, @Metric, @Value, @BaselineValue, @BaselineJobId, @Threshold, @Direction, @Now)
                    ON CONFLICT (job_id, metric) DO NOTHING
                    RETURNING {RegressionColumns}
                    """, new
                    {
                        regression.JobId, regression.ScheduleName, regression.CheckpointSha256, regression.Metric, regression.Value,
                        regression.BaselineValue, regression.BaselineJobId, regression.Threshold, regression.Direction, Now = now,
                    }, transaction, token));
                if (row is not null) inserted.Add(row);
            }
            return inserted;
        }, cancellationToken);

    /// <summary>Regressions, newest first: of one job, of one schedule, or all; optionally only those not yet notified.</summary>
    public Task<IReadOnlyList<RegressionRecord>> ListRegressionsAsync(RegressionFilter filter, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<RegressionRecord>>(async (connection, transaction, token) =>
        {
            var conditions = new List<string>();
            var parameters = new DynamicParameters();
            parameters.Add("Limit", filter.Limit);
            if (filter.JobId is { } job) { conditions.Add("job_id = @JobId"); parameters.Add("JobId", job); }
            if (filter.ScheduleName is { } schedule) { conditions.Add("schedule_name = @ScheduleName"); parameters.Add("ScheduleName", schedule); }
            if (filter.UnnotifiedBefore is { } before) { conditions.Add("notified_at IS NULL AND created_at < @Before"); parameters.Add("Before", before); }
            var where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
            return (await connection.QueryAsync<RegressionRecord>(database.Command(
                $"SELECT {RegressionColumns} FROM regressions {where} ORDER BY created_at DESC, id DESC LIMIT @Limit", parameters, transaction, token))).ToList();
        }, cancellationToken);

    /// <summary>Marks regressions as delivered to their schedule's webhook.</summary>
    public Task MarkNotifiedAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => database.ExecuteAsync(connection, transaction,
            "UPDATE regressions SET notified_at = @Now WHERE id = @Id AND notified_at IS NULL",
            ids.Select(id => new { Id = id, Now = timeProvider.GetUtcNow() }), token), cancellationToken);

    /// <summary>
    /// Serialises slot recordings (advisory lock on PostgreSQL; SQLite transactions already exclude other writers) and,
    /// for a lease holder, checks it still holds the lease: the fence against a replica that stalled past its lease.
    /// </summary>
    private async Task<bool> EnterSlotSectionAsync(DbConnection connection, DbTransaction transaction, string? leaseHolder, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        if (database.IsPostgres)
            await database.ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(@Key)", new { Key = SlotLockKey }, cancellationToken);
        if (leaseHolder is null) return true;
        return await connection.ExecuteScalarAsync<int?>(database.Command("""
            SELECT 1 FROM scheduler_lease WHERE name = @Name AND holder = @Holder AND expires_at > @Now
            """, new { Name = LeaseName, Holder = leaseHolder, Now = now }, transaction, cancellationToken)) == 1;
    }

    private async Task<IReadOnlyList<SeenCheckpoint>> SeenAsync(DbConnection connection, DbTransaction transaction, string scheduleName,
        CancellationToken cancellationToken) =>
        (await connection.QueryAsync<SeenCheckpoint>(database.Command("""
            SELECT s.checkpoint_location AS location, s.checkpoint_version AS version FROM schedule_jobs s JOIN jobs j ON j.id = s.job_id
            WHERE s.schedule_name = @Name AND j.status NOT IN ('failed', 'cancelled')
            UNION
            SELECT checkpoint_location, checkpoint_version FROM schedule_checkpoints WHERE schedule_name = @Name
            """, new { Name = scheduleName }, transaction, cancellationToken))).ToList();

    private Task<int> AdvanceWatermarkAsync(DbConnection connection, DbTransaction transaction, string name, DateTimeOffset to,
        CancellationToken cancellationToken) =>
        database.ExecuteAsync(connection, transaction, """
            UPDATE schedules SET watermark_at = @To WHERE name = @Name AND watermark_at < @To
            """, new { Name = name, To = to }, cancellationToken);

    private Task<IReadOnlyList<JobToPublish>> OpenPartitionsAsync(string condition, object? parameters, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<JobToPublish>>(async (connection, transaction, token) =>
        {
            var rows = await connection.QueryAsync<(Guid JobId, int Partition, int Attempt)>(database.Command($"""
                SELECT s.job_id, p.partition_index, p.attempt
                FROM schedule_jobs s JOIN jobs j ON j.id = s.job_id JOIN partitions p ON p.job_id = s.job_id
                WHERE {condition} AND p.status IN ('pending', 'running')
                ORDER BY s.created_at, p.partition_index
                """, parameters, transaction, token));
            return rows.GroupBy(r => r.JobId)
                .Select(g => new JobToPublish(g.Key, g.Select(r => r.Partition).ToList(), Math.Max(1, g.Max(r => r.Attempt))))
                .ToList();
        }, cancellationToken);

    private sealed class SlotJob
    {
        public Guid JobId { get; init; }
        public DateTimeOffset SlotAt { get; init; }
    }
}

/// <summary>Which regressions to list; every given field must match.</summary>
/// <param name="UnnotifiedBefore">Only those not yet delivered to a webhook and recorded before this time.</param>
public sealed record RegressionFilter(Guid? JobId = null, string? ScheduleName = null, DateTimeOffset? UnnotifiedBefore = null, int Limit = 1000);
