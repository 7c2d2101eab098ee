using WinTok.Worker.Telemetry;

namespace WinTok.Worker.Tokenize;

/// <summary>Images tokenized by this process, for progress displays, the heartbeat's rate and the <c>WinTok.Worker</c> meter.</summary>
internal sealed class TokenizeProgress(WorkerMetrics metrics)
{
    private long total;

    public long Images => Interlocked.Read(ref total);

    public void AddImages(int count)
    {
        Interlocked.Add(ref total, count);
        metrics.AddImages(count);
    }
}
