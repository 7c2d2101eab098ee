using System.Diagnostics;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Tokenize;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>What became of one slot this runner fired.</summary>
/// <param name="Recording">Whether this call recorded it (and submitted its jobs), or another scheduler had.</param>
/// <param name="Outcome">The slot's outcome as recorded (<see cref="SlotOutcome"/>), or null when the slot was not recorded at all.</param>
internal sealed record SlotRun(SlotRecording? Recording, string? Outcome, IReadOnlyList<Guid> Jobs, string? Detail);

/// <summary>
/// Fires schedules' slots: finds the due ones, decides missed ones by the schedule's policy, picks the checkpoints a
/// slot evaluates, plans each evaluation with the real submitter (hashing and inspecting the checkpoint, listing the
/// dataset), then records the slot and its jobs in one transaction (<see cref="SchedulesRepository.RecordSlotAsync"/>)
/// and publishes the jobs after the commit. A slot is (schedule, time) and its row's primary key refuses a second
/// recording, so two replicas, or a restart, never submit a slot twice; a job recorded but never published (the
/// process stopped in between) is published later by <see cref="RepublishAsync"/>, so none is lost either.
/// </summary>
internal sealed class ScheduleRunner(
    SchedulesRepository schedules,
    IServiceScopeFactory scopes,
    [FromKeyedServices(EvaluateJobSpec.JobKind)] IPartitionPublisher publisher,
    IOptions<SchedulerOptions> options,
    ScheduleMeter meter,
    TimeProvider timeProvider,
    ILogger<ScheduleRunner> logger,
    BlobServiceClient? blobService = null)
{
    /// <summary>At most this many due slots of one schedule are recorded one by one in a pass (an outage of years is not a million rows).</summary>
    public const int MaxSlotsPerPass = 1000;

    private readonly SchedulerOptions settings = options.Value;

    /// <summary>One pass: every due slot of every schedule that is not paused. <paramref name="leaseHolder"/> fences the writes.</summary>
    public async Task RunDueAsync(string leaseHolder, CancellationToken cancellationToken)
    {
        foreach (var record in await schedules.ListAsync(cancellationToken))
        {
            if (record.Paused) continue;
            ScheduleDefinition schedule;
            try
            {
                schedule = ScheduleDefinition.From(record);
            }
            catch (Exception e) when (e is ArgumentException or JsonException)
            {
                Log.ScheduleInvalid(logger, record.Name, e.Message);
                continue;
            }
            await RunScheduleAsync(schedule, leaseHolder, cancellationToken);
        }
    }

    /// <summary>The due slots of one schedule: missed ones recorded by its policy, the others fired in order.</summary>
    public async Task RunScheduleAsync(ScheduleDefinition schedule, string leaseHolder, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var due = new Queue<DateTimeOffset>();
        DateTimeOffset? dropped = null;
        foreach (var slot in schedule.Cron.Between(schedule.WatermarkAt, now))
        {
            due.Enqueue(slot);
            if (due.Count > MaxSlotsPerPass) dropped = due.Dequeue();
        }
        if (dropped is { } before)
        {
            Log.TooManyMissedSlots(logger, schedule.Name, MaxSlotsPerPass, before);
            await schedules.AdvanceWatermarkAsync(schedule.Name, before, cancellationToken);
        }
        if (due.Count == 0) return;

        var decisions = SlotRules.Decide([.. due], now, settings.MissedAfter, schedule.MissedPolicy);
        var idle = decisions.Where(d => d.Action != SlotAction.Fire).ToList();
        if (idle.Count > 0)
        {
            var outcome = idle[0].Action == SlotAction.RecordSkipped ? SlotOutcome.Skipped : SlotOutcome.Missed;
            var detail = outcome == SlotOutcome.Skipped
                ? "missed while no scheduler ran; the schedule's policy is skip"
                : "missed while no scheduler ran; a newer slot ran instead (policy run-once)";
            var slots = idle.Select(d => new NewSlot(schedule.Name, d.SlotAt, SlotTrigger.Cron, outcome, detail, settings.InstanceName)).ToList();
            if (!await schedules.RecordIdleSlotsAsync(slots, leaseHolder, cancellationToken))
            {
                Log.SlotLeaseLost(logger, schedule.Name, idle[0].SlotAt);
                return;
            }
            Log.MissedSlots(logger, schedule.Name, idle.Count, idle[0].SlotAt, idle[^1].SlotAt, schedule.MissedPolicy, outcome);
            meter.RecordSlots(schedule.Name, outcome, idle.Count);
        }
        foreach (var fire in decisions.Where(d => d.Action == SlotAction.Fire))
        {
            var run = await FireAsync(schedule, fire.SlotAt, SlotTrigger.Cron, leaseHolder, checkpoint: null, publish: true, cancellationToken);
            if (run.Recording == SlotRecording.LeaseLost) return;
        }
    }

    /// <summary>
    /// Runs a schedule now, as <c>wintok schedules run-now</c> does: a manual slot at the current second, evaluating
    /// what a cron slot would, or <paramref name="checkpoint"/> when given (e.g. a baseline to pin). Any process may do
    /// it; it takes no lease, and the slot's key still refuses a repeat within the same second. Without
    /// <paramref name="publish"/> the jobs are left unpublished for the lease holder (a process whose in-process queue
    /// no worker reads).
    /// </summary>
    public Task<SlotRun> RunNowAsync(ScheduleDefinition schedule, string? checkpoint, bool publish, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var slotAt = new DateTimeOffset(now.UtcTicks - now.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        return FireAsync(schedule, slotAt, SlotTrigger.Manual, leaseHolder: null, checkpoint, publish, cancellationToken);
    }

    /// <summary>
    /// Publishes scheduled jobs whose slot was recorded but whose messages never were (the scheduler stopped between
    /// its commit and its publish), once they are <see cref="SchedulerOptions.RepublishAfter"/> old. With
    /// <paramref name="everyUnfinished"/> (an in-process queue, whose messages died with the previous process), every
    /// open partition of every unfinished scheduled job. A partition published twice is claimed once: its lease and its
    /// commit record make the second delivery a no-op, so republishing repeats no work.
    /// </summary>
    public async Task RepublishAsync(bool everyUnfinished, CancellationToken cancellationToken)
    {
        var jobs = everyUnfinished
            ? await schedules.ListUnfinishedAsync(cancellationToken)
            : await schedules.ListUnpublishedAsync(timeProvider.GetUtcNow() - settings.RepublishAfter, cancellationToken);
        foreach (var job in jobs)
        {
            if (await PublishAsync(job.JobId, job.Partitions, job.Attempt, cancellationToken))
                Log.Republished(logger, job.JobId, job.Partitions.Count, everyUnfinished ? "in-process queue restarted" : "recorded but never published");
        }
    }

    private async Task<SlotRun> FireAsync(ScheduleDefinition schedule, DateTimeOffset slotAt, string trigger, string? leaseHolder, string? checkpoint,
        bool publish, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        Log.FiringSlot(logger, schedule.Name, slotAt, trigger);
        var problems = new List<string>();
        IReadOnlyList<(string Location, bool Watched)> targets;
        if (checkpoint is not null || !schedule.Watches)
        {
            targets = [(checkpoint ?? schedule.Target, false)];
        }
        else
        {
            try
            {
                var listed = await CheckpointWatch.ListAsync(schedule.Target, blobService, cancellationToken);
                var seen = (await schedules.ListSeenCheckpointsAsync(schedule.Name, cancellationToken)).ToHashSet();
                targets = [.. CheckpointWatch.Select(schedule.TargetMode, listed, seen, timeProvider.GetUtcNow(), settings.CheckpointSettleTime)
                    .Select(c => (c.Location, true))];
            }
            catch (Exception e) when (IsTransient(e))
            {
                Log.WatchFailed(logger, e, schedule.Name, schedule.Target);
                return new SlotRun(null, null, [], null); // not recorded: the next pass tries this slot again
            }
            catch (DirectoryNotFoundException e)
            {
                // Recorded as the slot's failure, so a mistyped prefix shows; a folder the trainer creates later is
                // watched from the next slot on.
                problems.Add(e.Message);
                targets = [];
            }
        }

        var jobs = new List<ScheduledJob>();
        var recognised = new List<RecognisedCheckpoint>();
        await using (var scope = scopes.CreateAsyncScope())
        {
            var submitter = scope.ServiceProvider.GetRequiredService<EvaluateJobSubmitter>();
            foreach (var (location, watched) in targets)
            {
                PlannedJob<EvaluateJobSpec> plan;
                try
                {
                    plan = await submitter.PlanAsync(schedule.Evaluation.ToRequest(schedule.Name, location, slotAt), cancellationToken);
                }
                catch (Exception e) when (IsTransient(e))
                {
                    Log.WatchFailed(logger, e, schedule.Name, location);
                    return new SlotRun(null, null, [], null);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    // A checkpoint or dataset the evaluation cannot use (a corrupt file, a missing weight): the slot
                    // records why, and a watched file is tried again at the next slot.
                    Log.PlanFailed(logger, e, schedule.Name, location);
                    problems.Add($"{location}: {e.Message}");
                    continue;
                }
                var spec = plan.Spec;
                if (watched && await schedules.FindEvaluationAsync(schedule.Name, spec.Checkpoint.Sha256, spec.Protocol, spec.Dataset, cancellationToken)
                    is { } evaluatedBy)
                {
                    Log.AlreadyEvaluated(logger, schedule.Name, location, evaluatedBy);
                    recognised.Add(new RecognisedCheckpoint(spec.Checkpoint.Location, spec.Checkpoint.Version, spec.Checkpoint.Sha256, spec.Protocol, evaluatedBy));
                    continue;
                }
                jobs.Add(new ScheduledJob(submitter.ToNewJob(plan), plan.Partitions, spec.Checkpoint.Location, spec.Checkpoint.Version,
                    spec.Checkpoint.Sha256, spec.Protocol, SkipIfSeen: watched));
            }
        }

        var outcome = jobs.Count > 0 ? SlotOutcome.Submitted : problems.Count > 0 ? SlotOutcome.Failed : SlotOutcome.NothingNew;
        var detail = problems.Count > 0 ? string.Join("; ", problems)
            : jobs.Count == 0 && schedule.Watches ? $"no new checkpoint under {schedule.Target}" : null;
        var result = await schedules.RecordSlotAsync(new NewSlot(schedule.Name, slotAt, trigger, outcome, detail, settings.InstanceName),
            jobs, recognised, leaseHolder, cancellationToken);
        switch (result.Outcome)
        {
            case SlotRecording.AlreadyRecorded:
                Log.SlotAlreadyRecorded(logger, schedule.Name, slotAt);
                return new SlotRun(result.Outcome, null, [], null);
            case SlotRecording.LeaseLost:
                Log.SlotLeaseLost(logger, schedule.Name, slotAt);
                return new SlotRun(result.Outcome, null, [], null);
        }

        // Committed: publish. A stop before this point leaves the jobs unpublished, and RepublishAsync publishes them.
        var recorded = jobs.Where(j => result.Jobs.Contains(j.Job.Id)).ToList();
        foreach (var job in recorded)
        {
            Log.SubmittedScheduledJob(logger, schedule.Name, job.Job.Id, job.CheckpointLocation);
            if (publish) await PublishAsync(job.Job.Id, [.. job.Partitions.Select(p => p.Index)], 1, cancellationToken);
        }
        var recordedOutcome = outcome == SlotOutcome.Submitted && recorded.Count == 0 ? SlotOutcome.NothingNew : outcome;
        meter.RecordSlots(schedule.Name, recordedOutcome, 1);
        Log.FiredSlot(logger, schedule.Name, slotAt, recordedOutcome, recorded.Count, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return new SlotRun(result.Outcome, recordedOutcome, result.Jobs, detail);
    }

    /// <summary>Publishes and marks published; a queue outage leaves the job for the next <see cref="RepublishAsync"/>.</summary>
    private async Task<bool> PublishAsync(Guid jobId, IReadOnlyCollection<int> partitions, int attempt, CancellationToken cancellationToken)
    {
        try
        {
            await publisher.PublishAsync(jobId, partitions, attempt, cancellationToken);
        }
        catch (Exception e) when (IsTransient(e) || RabbitMqConnection.IsTransient(e))
        {
            Log.PublishFailed(logger, e, jobId);
            return false;
        }
        await schedules.MarkPublishedAsync([jobId], cancellationToken);
        return true;
    }

    /// <summary>
    /// Outages worth trying again at the next pass rather than recording as the slot's failure: the database's transient
    /// failures, blob storage's 408, 429 and 5xx, lost connections and timeouts. A missing file is no outage: it is the
    /// slot's failure, recorded.
    /// </summary>
    internal static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException or FileNotFoundException or DirectoryNotFoundException => false,
        _ when ResultsDatabase.IsTransient(exception) => true,
        Azure.RequestFailedException { Status: 0 or 408 or 429 or >= 500 } => true,
        HttpRequestException or System.Net.Sockets.SocketException or TimeoutException => true,
        AggregateException aggregate => aggregate.InnerExceptions.All(IsTransient),
        { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };
}
