using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>A worker as shown: its last heartbeat, whether that is recent enough to call it alive, and how old it is.</summary>
public sealed record WorkerRow(WorkerRecord Worker, bool Alive, TimeSpan Age)
{
    public static WorkerRow Of(WorkerRecord worker, DateTimeOffset now, TimeSpan heartbeatInterval) =>
        new(worker, worker.IsAlive(now, heartbeatInterval), now - worker.HeartbeatAt);
}
