namespace WinTok.Results;

/// <summary>What a worker is doing (<c>workers.state</c>).</summary>
public static class WorkerState
{
    public const string Idle = "idle";
    public const string Busy = "busy";
    public const string Stopping = "stopping";
}

/// <summary>
/// One heartbeat of a worker process: who it is, what it is doing now, and how fast. Written every few seconds
/// (<c>Worker:HeartbeatInterval</c>); a worker whose last heartbeat is older than three intervals is taken for gone.
/// </summary>
/// <param name="Name">The worker's name, as partitions record it (<c>Worker:WorkerName</c>, by default host:pid).</param>
/// <param name="ImagesPerSecond">Images finished per second since the previous heartbeat; null before the first interval.</param>
/// <param name="GpuMemoryMib">Memory in use on the worker's GPU, in MiB; null without a GPU or nvidia-smi.</param>
public sealed record WorkerHeartbeat(
    string Name,
    string Host,
    int Pid,
    DateTimeOffset StartedAt,
    string State,
    Guid? JobId,
    int? Partition,
    double? ImagesPerSecond,
    long? GpuMemoryMib);

/// <summary>One <c>workers</c> row.</summary>
public sealed class WorkerRecord
{
    public string Name { get; init; } = "";
    public string Host { get; init; } = "";
    public int Pid { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset HeartbeatAt { get; init; }
    public string State { get; init; } = "";
    public Guid? JobId { get; init; }
    public int? Partition { get; init; }
    public double? ImagesPerSecond { get; init; }
    public long? GpuMemoryMib { get; init; }

    /// <summary>Alive while its last heartbeat is within three heartbeat intervals of <paramref name="now"/>.</summary>
    public bool IsAlive(DateTimeOffset now, TimeSpan heartbeatInterval) => now - HeartbeatAt <= heartbeatInterval * 3;
}
