using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>A job's speed and what is left, from its recorded progress.</summary>
/// <param name="ImagesPerSecond">Items finished per second of the job's running time; null before anything finished.</param>
/// <param name="Eta">Time left at that speed, for a running job with a known size; null otherwise.</param>
public sealed record JobRates(double? ImagesPerSecond, TimeSpan? Eta)
{
    /// <summary>
    /// Speed over the job's whole run (start to now, or to its end): steadier than the last poll's, and the same
    /// number the CLI's summary prints.
    /// </summary>
    public static JobRates Of(JobProgress job, DateTimeOffset now)
    {
        if (job.StartedAt is not { } started || job.ItemsDone <= 0) return new JobRates(null, null);
        var seconds = ((job.FinishedAt ?? now) - started).TotalSeconds;
        if (seconds <= 0) return new JobRates(null, null);
        var rate = job.ItemsDone / seconds;
        var running = job.Status is JobStatus.Running or JobStatus.Queued;
        TimeSpan? eta = running && job.Items > job.ItemsDone ? TimeSpan.FromSeconds((job.Items - job.ItemsDone) / rate) : null;
        return new JobRates(rate, eta);
    }
}
