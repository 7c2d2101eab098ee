using System.Diagnostics.Metrics;

namespace WinTok.Worker.Tokenize;

/// <summary>Images tokenized by this process, for progress displays and the <c>WinTok.Worker</c> meter.</summary>
internal sealed class TokenizeProgress : IDisposable
{
    private readonly Meter meter = new("WinTok.Worker");
    private readonly Counter<long> images;
    private long total;

    public TokenizeProgress()
    {
        images = meter.CreateCounter<long>("wintok.tokenize.images", "{image}", "Images tokenized and written to shards");
    }

    public long Images => Interlocked.Read(ref total);

    public void AddImages(int count)
    {
        Interlocked.Add(ref total, count);
        images.Add(count);
    }

    public void Dispose() => meter.Dispose();
}
