using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Display;

/// <summary>
/// Watches a job that this process runs itself (in-process queue, SQLite results): polls its progress until it ends,
/// feeds a <see cref="ProgressDisplay"/>, cancels the job when the user interrupts, and records a partition the
/// in-process queue gave up on as failed. On RabbitMQ the dead-letter queue keeps such a message for an operator; here
/// nothing would, and the job would wait forever.
/// </summary>
internal sealed class EmbeddedJobRunner(
    ResultsRepository results,
    IEnumerable<IDeadLetters> queues,
    IOptions<WorkerOptions> workerOptions,
    TimeProvider timeProvider,
    ILogger<EmbeddedJobRunner> logger)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Returns the job's progress once it has succeeded, failed or been cancelled. <paramref name="detail"/>, when given,
    /// says more than the images done (a training run's iteration and losses) on every poll.
    /// </summary>
    public async Task<JobProgress> WaitAsync(Guid jobId, ProgressDisplay display, CancellationToken cancellationToken,
        Func<CancellationToken, Task<string?>>? detail = null)
    {
        var handledDeadLetters = 0;
        return await display.RunAsync(async update =>
        {
            while (true)
            {
                // The job's own state is read without the caller's token: an interrupt must still record the cancel.
                var job = await results.GetJobProgressAsync(jobId, CancellationToken.None)
                    ?? throw new InvalidOperationException($"Job {jobId} vanished from the results database");
                update(new ProgressSnapshot(job, timeProvider.GetUtcNow(), detail is null ? null : await detail(CancellationToken.None)));
                if (IsFinished(job.Status)) return job;

                if (cancellationToken.IsCancellationRequested)
                {
                    Log.CancellingJob(logger, jobId);
                    await results.CancelJobAsync(jobId, CancellationToken.None);
                    continue;
                }
                handledDeadLetters = await FailDeadLetteredAsync(jobId, handledDeadLetters);
                try
                {
                    await Task.Delay(PollInterval, timeProvider, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // next round records the cancel
                }
            }
        });
    }

    /// <summary>The closing summary of a job this process ran, read once its host has stopped.</summary>
    public static async Task WriteSummaryAsync(IServiceProvider services, Guid jobId, string database, TextWriter output)
    {
        var results = services.GetRequiredService<ResultsRepository>();
        var job = await results.GetJobProgressAsync(jobId, CancellationToken.None)
            ?? throw new InvalidOperationException($"Job {jobId} vanished from the results database");
        await JobReport.WriteSummaryAsync(output, job, results, services.GetRequiredService<EvaluationsRepository>(),
            services.GetService<BlobServiceClient>(), CancellationToken.None);
        output.WriteLine($"  results:   {database} (wintok jobs show {jobId} --db {database})");
    }

    public static bool IsFinished(string status) => status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;

    private async Task<int> FailDeadLetteredAsync(Guid jobId, int handled)
    {
        var letters = queues.SelectMany(q => q.All).ToList();
        foreach (var letter in letters.Skip(handled).Where(l => l.Message.JobId == jobId))
        {
            Log.PartitionDeadLettered(logger, jobId, letter.Message.Partition, letter.Reason);
            await results.MarkPartitionFailedAsync(jobId, letter.Message.Partition, workerOptions.Value.WorkerName, letter.Reason,
                CancellationToken.None);
        }
        return letters.Count;
    }
}

/// <summary>One poll: the job as recorded (its images done come from the workers' lease renewals and commits).</summary>
/// <param name="Detail">What the job kind adds to the line (a training run's iteration and losses), or null.</param>
internal sealed record ProgressSnapshot(JobProgress Job, DateTimeOffset At, string? Detail = null);
