using System.Collections.Concurrent;
using WinTok.Results;

namespace WinTok.Worker.Hosting;

/// <summary>What this worker process is doing now, for its heartbeat: the partitions in hand, and whether it is stopping.</summary>
internal sealed class WorkerStatus
{
    private readonly ConcurrentDictionary<(Guid Job, int Partition), long> running = new();
    private long order;
    private volatile bool stopping;

    /// <summary>Marks a partition in hand until the returned handle is disposed.</summary>
    public IDisposable Working(Guid jobId, int partition)
    {
        running[(jobId, partition)] = Interlocked.Increment(ref order);
        return new Release(this, (jobId, partition));
    }

    public void Stopping() => stopping = true;

    /// <summary>The state to report, and the partition taken most recently when busy.</summary>
    public (string State, Guid? JobId, int? Partition) Current()
    {
        var newest = running.OrderByDescending(r => r.Value).Select(r => ((Guid, int)?)r.Key).FirstOrDefault();
        var state = stopping ? WorkerState.Stopping : newest is null ? WorkerState.Idle : WorkerState.Busy;
        return (state, newest?.Item1, newest?.Item2);
    }

    private sealed class Release(WorkerStatus status, (Guid, int) key) : IDisposable
    {
        public void Dispose() => status.running.TryRemove(key, out _);
    }
}
