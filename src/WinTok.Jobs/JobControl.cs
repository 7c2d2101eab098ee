using Microsoft.Extensions.DependencyInjection;
using WinTok.Contracts;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs;

/// <summary>
/// Publishes the partition messages of one job kind. Each kind registers one under its name
/// (<c>AddKeyedSingleton&lt;IPartitionPublisher&gt;(kind, ...)</c>), so retrying needs no knowledge of kinds.
/// </summary>
public interface IPartitionPublisher
{
    Task PublishAsync(Guid jobId, IReadOnlyCollection<int> partitions, int attempt, CancellationToken cancellationToken);
}

/// <summary>The <see cref="IPartitionPublisher"/> of a kind whose messages are <typeparamref name="TMessage"/>.</summary>
public sealed class PartitionPublisher<TMessage>(IMessagePublisher<TMessage> publisher, Func<Guid, int, int, TMessage> create) : IPartitionPublisher
    where TMessage : class, IJobMessage
{
    public Task PublishAsync(Guid jobId, IReadOnlyCollection<int> partitions, int attempt, CancellationToken cancellationToken) =>
        publisher.PublishManyAsync(partitions.Select(p => create(jobId, p, attempt)).ToList(), cancellationToken);
}

/// <summary>Cancel and retry for every job kind: what `wintok jobs`, the dashboard and the scheduler do to jobs.</summary>
public sealed class JobControl(ResultsRepository results, IServiceProvider services)
{
    /// <summary>Cancels a queued or running job; running partitions stop at their next check. False when it had already ended.</summary>
    public Task<bool> CancelAsync(Guid jobId, CancellationToken cancellationToken) => results.CancelJobAsync(jobId, cancellationToken);

    /// <summary>
    /// Reopens a failed or cancelled job's unfinished partitions (those of <paramref name="deadWorkers"/> too, whatever
    /// their leases say) and publishes them again with the next attempt number; committed partitions are never redone.
    /// Each partition reads the inputs recorded at submission, not a new listing of the corpus.
    /// </summary>
    public async Task<IReadOnlyList<int>> RetryAsync(Guid jobId, CancellationToken cancellationToken, IReadOnlyCollection<string>? deadWorkers = null)
    {
        var job = await results.GetJobAsync(jobId, cancellationToken) ?? throw new KeyNotFoundException($"There is no job {jobId}");
        var publisher = services.GetKeyedService<IPartitionPublisher>(job.Kind)
            ?? throw new InvalidOperationException($"Job {jobId} is a {job.Kind} job, which this process cannot publish");
        var reopened = await results.ResetFailedPartitionsAsync(jobId, deadWorkers ?? [], cancellationToken);
        if (reopened.Count == 0) return reopened;
        var attempt = (await results.ListPartitionsAsync(jobId, cancellationToken)).Max(p => p.Attempt) + 1;
        await publisher.PublishAsync(jobId, reopened, attempt, cancellationToken);
        return reopened;
    }
}
