namespace WinTok.Results;

/// <summary>What a schedule evaluates (<c>schedules.target_mode</c>).</summary>
public static class ScheduleTargetMode
{
    /// <summary>One fixed checkpoint, at every slot.</summary>
    public const string Checkpoint = "checkpoint";

    /// <summary>The newest checkpoint under a prefix (by training position), when not yet evaluated.</summary>
    public const string Newest = "newest";

    /// <summary>Every checkpoint under a prefix not yet evaluated.</summary>
    public const string Every = "every";

    public static IReadOnlyList<string> All { get; } = [Checkpoint, Newest, Every];
}

/// <summary>What happens to slots that passed while no scheduler ran (<c>schedules.missed_policy</c>).</summary>
public static class MissedSlotPolicy
{
    /// <summary>The newest missed slot fires once on start; older ones are recorded as missed.</summary>
    public const string RunOnce = "run-once";

    /// <summary>Every missed slot is recorded as skipped; none fires.</summary>
    public const string Skip = "skip";

    public static IReadOnlyList<string> All { get; } = [RunOnce, Skip];
}

/// <summary>What became of a slot (<c>schedule_slots.outcome</c>).</summary>
public static class SlotOutcome
{
    public const string Submitted = "submitted";
    public const string NothingNew = "nothing-new";
    public const string Missed = "missed";
    public const string Skipped = "skipped";
    public const string Failed = "failed";
}

/// <summary>Who asked for a slot (<c>schedule_slots.trigger_kind</c>).</summary>
public static class SlotTrigger
{
    public const string Cron = "cron";
    public const string Manual = "manual";
}

/// <summary>A schedule as <c>wintok schedules add</c> records it; the evaluation and thresholds are the control plane's JSON.</summary>
public sealed record NewSchedule(
    string Name,
    string Cron,
    string TimeZone,
    string TargetMode,
    string Target,
    string EvaluationJson,
    string MissedPolicy,
    string? Baseline,
    string ThresholdsJson,
    string? WebhookUrl,
    bool Paused);

/// <summary>One <c>schedules</c> row.</summary>
public sealed class ScheduleRecord
{
    public string Name { get; init; } = "";
    public string Cron { get; init; } = "";
    public string TimeZone { get; init; } = "";
    public string TargetMode { get; init; } = "";
    public string Target { get; init; } = "";
    public string EvaluationJson { get; init; } = "";
    public string MissedPolicy { get; init; } = "";

    /// <summary>A pinned baseline checkpoint (its location), or null for the best so far.</summary>
    public string? Baseline { get; init; }

    public string ThresholdsJson { get; init; } = "";

    /// <summary>May hold a secret token: never log it.</summary>
    public string? WebhookUrl { get; init; }

    public bool Paused { get; init; }

    /// <summary>The latest cron slot handled (or the time the schedule was added or resumed): slots after it are due.</summary>
    public DateTimeOffset WatermarkAt { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>A slot to record: a schedule's cron time (or a manual run's time) and what became of it.</summary>
public sealed record NewSlot(string ScheduleName, DateTimeOffset SlotAt, string Trigger, string Outcome, string? Detail, string Scheduler);

/// <summary>One <c>schedule_slots</c> row with the jobs it submitted.</summary>
public sealed class SlotRecord
{
    public string ScheduleName { get; init; } = "";
    public DateTimeOffset SlotAt { get; init; }
    public string TriggerKind { get; init; } = "";
    public string Outcome { get; init; } = "";
    public string? Detail { get; init; }
    public string Scheduler { get; init; } = "";
    public DateTimeOffset RecordedAt { get; init; }

    /// <summary>The jobs the slot submitted (filled by the repository).</summary>
    public IReadOnlyList<Guid> Jobs { get; set; } = [];
}

/// <summary>
/// A job a slot submits, recorded with the slot in one transaction: its rows, and the checkpoint file version it
/// evaluates, so later slots know the file is taken care of without hashing it again.
/// </summary>
/// <param name="SkipIfSeen">Watched prefixes: leave the job out when the file version already has a live job of the schedule.</param>
public sealed record ScheduledJob(
    NewJob Job,
    IReadOnlyCollection<NewPartition> Partitions,
    string CheckpointLocation,
    string CheckpointVersion,
    string CheckpointSha256,
    string Protocol,
    bool SkipIfSeen);

/// <summary>A checkpoint file version found already evaluated (same content, protocol and dataset) by a job the schedule did not submit.</summary>
public sealed record RecognisedCheckpoint(string Location, string Version, string Sha256, string Protocol, Guid? EvaluatedBy);

/// <summary>A file version a schedule has dealt with: submitted (its job still live) or recognised as evaluated elsewhere.</summary>
public sealed record SeenCheckpoint(string Location, string Version);

public enum SlotRecording
{
    /// <summary>The slot and its jobs are recorded; publish the jobs.</summary>
    Recorded,

    /// <summary>Another scheduler (or an earlier attempt of this call) recorded the slot: nothing was written.</summary>
    AlreadyRecorded,

    /// <summary>The caller no longer holds the scheduler lease: nothing was written.</summary>
    LeaseLost,
}

/// <param name="Jobs">The jobs recorded with the slot (watched-prefix jobs whose file already had a live job are left out).</param>
public sealed record SlotRecordResult(SlotRecording Outcome, IReadOnlyList<Guid> Jobs);

/// <summary>A recorded job whose partition messages still have to be published, with its open partitions.</summary>
public sealed record JobToPublish(Guid JobId, IReadOnlyList<int> Partitions, int Attempt);

/// <summary>A metric of a finished evaluation that is worse than its baseline by more than its threshold.</summary>
/// <param name="Threshold">The allowed worsening in the metric's units (a relative threshold is turned into units of the baseline).</param>
/// <param name="Direction"><c>lower</c> when lower is better (rFID, LPIPS), <c>higher</c> when higher is (PSNR, SSIM, accuracy).</param>
public sealed record NewRegression(
    Guid JobId,
    string? ScheduleName,
    string CheckpointSha256,
    string Metric,
    double Value,
    double BaselineValue,
    Guid? BaselineJobId,
    double Threshold,
    string Direction);

/// <summary>One <c>regressions</c> row.</summary>
public sealed class RegressionRecord
{
    public long Id { get; init; }
    public Guid JobId { get; init; }
    public string? ScheduleName { get; init; }
    public string CheckpointSha256 { get; init; } = "";
    public string Metric { get; init; } = "";
    public double Value { get; init; }
    public double BaselineValue { get; init; }
    public Guid? BaselineJobId { get; init; }
    public double Threshold { get; init; }
    public string Direction { get; init; } = "";
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? NotifiedAt { get; init; }
}
