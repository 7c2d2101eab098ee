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

    /// <summary>
    /// "1,200/5,000 images, 85.3 img/s, ETA 00:00:42, 2 failed, 3/5 parts": short enough for an 80-column terminal
    /// beside the bar. The total is known when the planner counted the files (not for tars).
    /// </summary>
    protected static string Describe(ProgressSnapshot snapshot, ProgressRate rate)
    {
        var job = snapshot.Job;
        var eta = rate.Eta(job) is { } remaining ? $"ETA {remaining:hh\\:mm\\:ss}" : "ETA --:--:--";
        var images = job.Items > 0 ? $"{job.ItemsDone:N0}/{job.Items:N0}" : $"{job.ItemsDone:N0}";
        if (snapshot.Detail is { } detail)
            return string.Create(CultureInfo.InvariantCulture, $"{detail}; {images} images, {rate.ImagesPerSecond:F1} img/s, {eta}");
        return string.Create(CultureInfo.InvariantCulture,
            $"{images} images, {rate.ImagesPerSecond:F1} img/s, {eta}, {job.ItemFailures} failed, {job.Committed + job.Failed}/{job.Partitions} parts");
    }

    /// <summary>Where the bar stands: images when their total is known, else partitions.</summary>
    protected static (double Value, double Max) Position(JobProgress job) => job.Items > 0
        ? (Math.Min(job.ItemsDone, job.Items), job.Items)
        : (job.Committed + job.Failed, Math.Max(1, job.Partitions));
}

/// <summary>
/// Images per second over the last few seconds (over the whole run once the window is empty), and the time left at that
/// rate: from the images left when their total is known, else from how long finished partitions took.
/// </summary>
internal sealed class ProgressRate
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private readonly Queue<(DateTimeOffset At, long Images)> recent = new();
    private DateTimeOffset? startedAt;
    private DateTimeOffset? firstImageAt;
    private DateTimeOffset lastAt;

    public double ImagesPerSecond { get; private set; }

    public void Add(ProgressSnapshot snapshot)
    {
        var done = snapshot.Job.ItemsDone;
        startedAt ??= snapshot.At;
        lastAt = snapshot.At;
        if (done > 0) firstImageAt ??= snapshot.At;
        recent.Enqueue((snapshot.At, done));
        while (recent.Count > 2 && snapshot.At - recent.Peek().At > Window) recent.Dequeue();
        var (oldestAt, oldest) = recent.Peek();
        if (done > oldest && snapshot.At > oldestAt)
            ImagesPerSecond = (done - oldest) / (snapshot.At - oldestAt).TotalSeconds;
        else if (done > 0 && snapshot.Job.StartedAt is { } started && snapshot.At > started)
            ImagesPerSecond = done / (snapshot.At - started).TotalSeconds; // a run too short for the window: its whole average
    }

    public TimeSpan? Eta(JobProgress job)
    {
        if (job.Items > 0 && ImagesPerSecond > 0)
            return TimeSpan.FromSeconds(Math.Round(Math.Max(0, job.Items - job.ItemsDone) / ImagesPerSecond));
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
                    var (value, max) = Position(snapshot.Job);
                    task.MaxValue = max;
                    task.Value = value;
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
            var finished = EmbeddedJobRunner.IsFinished(snapshot.Job.Status);
            // A line per interval, one whenever a partition finishes, and the last.
            if (lastLine is null || snapshot.At - lastLine >= interval || done != lastDone || finished)
            {
                output.WriteLine(Describe(snapshot, rate));
                lastLine = snapshot.At;
                lastDone = done;
            }
        });
    }
}
