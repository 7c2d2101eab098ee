using System.Diagnostics;

namespace WinTok.Jobs;

/// <summary>
/// The control plane's spans (ActivitySource <c>WinTok.Jobs</c>). A job's trace starts at its submission: the span's
/// traceparent is stored with the job, and every partition's span on any worker is its child.
/// </summary>
public static class JobsTelemetry
{
    public static ActivitySource Source { get; } = new("WinTok.Jobs");

    /// <summary>The submission span of job <paramref name="jobId"/>; null when nothing listens (no OTLP endpoint).</summary>
    public static Activity? StartJob(string kind, Guid jobId, int partitions) =>
        Source.StartActivity("wintok.job", ActivityKind.Producer, parentContext: default, tags:
        [
            new("wintok.job.id", jobId.ToString()),
            new("wintok.job.kind", kind),
            new("wintok.job.partitions", partitions),
        ]);
}
