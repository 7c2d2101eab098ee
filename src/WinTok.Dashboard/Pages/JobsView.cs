using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>A job in the list, with its speed.</summary>
public sealed record JobRow(JobProgress Job, JobRates Rates);

/// <summary>The jobs page: the newest jobs matching the filters.</summary>
public sealed record JobsView(IReadOnlyList<JobRow> Jobs, string? Status, string? Kind, int Limit)
{
    public static IReadOnlyList<string> Statuses { get; } = [JobStatus.Queued, JobStatus.Running, JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled];

    public static IReadOnlyList<string> Kinds { get; } = ["tokenize", "evaluate"];
}
