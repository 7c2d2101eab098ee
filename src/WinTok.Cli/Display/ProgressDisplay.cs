using System.Globalization;
using Spectre.Console;
using WinTok.Results;

namespace WinTok.Cli.Display;

/// <summary>
/// Shows a running job: a live progress bar on a terminal, a plain line every few seconds otherwise (logs, CI), so
/// redirected output stays readable.
/// </summary>
internal abstract class ProgressDisplay
{
    public static ProgressDisplay Create(IAnsiConsole console, TextWriter plainOutput) =>
        console.Profile.Capabilities.Interactive && !Console.IsOutputRedirected
            ? new LiveProgressDisplay(console)
            : new PlainProgressDisplay(plainOutput, TimeSpan.FromSeconds(5));

    /// <summary>Runs <paramref name="watch"/>, which reports every poll through the action it is given.</summary>
    public abstract Task<T> RunAsync<T>(Func<Action<ProgressSnapshot>, Task<T>> watch);

    /// <summary>"3/5 partitions, 1,200 images, 85.3 img/s, ETA 00:00:42, 2 failed": short enough for an 80-column terminal beside the bar.</summary>
    protected static string Describe(ProgressSnapshot snapshot, ProgressRate rate)
    {
        var job = snapshot.Job;
        var eta = rate.Eta(job) is { } remaining ? $"ETA {remaining:hh\\:mm\\:ss}" : "ETA --:--:--";
        return string.Create(CultureInfo.InvariantCulture,
            $"{job.Committed + job.Failed}/{job.Partitions} partitions, {snapshot.Images:N0} images, {rate.ImagesPerSecond:F1} img/s, {eta}, {job.ItemFailures} failed");
    }
}

/// <summary>Images per second since the first image, and the time left from how long finished partitions took.</summary>
internal sealed class ProgressRate
{
    private DateTimeOffset? firstImageAt;
    private long firstImages;
    private DateTimeOffset? startedAt;
    private DateTimeOffset lastAt;

    public double ImagesPerSecond { get; private set; }

    public void Add(ProgressSnapshot snapshot)
    {
        startedAt ??= snapshot.At;
        lastAt = snapshot.At;
        if (firstImageAt is null && snapshot.Images > 0)
        {
            // Rates count from the first image, so model loading does not drag the figure down.
            firstImageAt = snapshot.At;
            firstImages = snapshot.Images;
        }
        if (firstImageAt is { } first && snapshot.At > first)
        {
            ImagesPerSecond = (snapshot.Images - firstImages) / (snapshot.At - first).TotalSeconds;
        }
    }

    public TimeSpan? Eta(JobProgress job)
    {
        var done = job.Committed + job.Failed;
        if (done == 0 || startedAt is null) return null;
        var perPartition = (lastAt - startedAt.Value) / done;
        return TimeSpan.FromSeconds(Math.Round((perPartition * (job.Partitions - done)).TotalSeconds));
    }
}

internal sealed class LiveProgressDisplay(IAnsiConsole console) : ProgressDisplay
{
    public override Task<T> RunAsync<T>(Func<Action<ProgressSnapshot>, Task<T>> watch) =>
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 20 }, new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("starting (loading the model)");
                var rate = new ProgressRate();
                return await watch(snapshot =>
                {
                    rate.Add(snapshot);
                    task.MaxValue = Math.Max(1, snapshot.Job.Partitions);
                    task.Value = snapshot.Job.Committed + snapshot.Job.Failed;
                    task.Description = Markup.Escape(Describe(snapshot, rate));
                    context.Refresh();
                });
            });
}

internal sealed class PlainProgressDisplay(TextWriter output, TimeSpan interval) : ProgressDisplay
{
    public override Task<T> RunAsync<T>(Func<Action<ProgressSnapshot>, Task<T>> watch)
    {
        var rate = new ProgressRate();
        DateTimeOffset? lastLine = null;
        var lastDone = -1;
        return watch(snapshot =>
        {
            rate.Add(snapshot);
            var done = snapshot.Job.Committed + snapshot.Job.Failed;
            // A line per interval, and one whenever a partition finishes.
            if (lastLine is null || snapshot.At - lastLine >= interval || done != lastDone)
            {
                output.WriteLine(Describe(snapshot, rate));
                lastLine = snapshot.At;
                lastDone = done;
            }
        });
    }
}
