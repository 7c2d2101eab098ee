namespace WinTok.Dashboard.Queries;

/// <summary>
/// One row of <c>regressions</c> (the scheduler's table): an evaluation whose metric moved past its threshold in the
/// wrong direction from a baseline.
/// </summary>
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

    /// <summary><c>lower</c> or <c>higher</c>: which way is better for the metric.</summary>
    public string Direction { get; init; } = "";
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? NotifiedAt { get; init; }
}
