using System.Security.Cryptography;
using WinTok.Data.Corpus;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Tests.Partitions;

public sealed class EarlierAttemptsTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("wintok-earlier-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task CommitOrKeep_WhenAnEarlierAttemptCommittedOtherBytes_KeepsTheEarlierFileAndSaysSo()
    {
        var store = new LocalFileStore(folder);
        byte[] earlier = [1, 2, 3, 4], retry = [1, 2, 3, 5];
        await Write(store, earlier);
        var kept = new List<string>();

        var result = await EarlierAttempts.CommitOrKeepAsync(store, () => Write(store, retry), kept.Add, TestContext.Current.CancellationToken);

        Assert.Equal(["_partials/part-000003.stats"], kept);
        Assert.Equal(CommitOutcome.AlreadyCommitted, result.Outcome);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(earlier)), result.Sha256);
        Assert.Equal(earlier.Length, result.Bytes);
        Assert.Equal(earlier, await File.ReadAllBytesAsync(Path.Combine(folder, "_partials", "part-000003.stats"), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task CommitOrKeep_WhenNothingIsThere_CommitsAndReportsNothingKept()
    {
        var store = new LocalFileStore(folder);
        var kept = new List<string>();

        var result = await EarlierAttempts.CommitOrKeepAsync(store, () => Write(store, [9, 9]), kept.Add, TestContext.Current.CancellationToken);

        Assert.Empty(kept);
        Assert.Equal(CommitOutcome.Created, result.Outcome);
    }

    private static Task<CommittedFile> Write(IFileStore store, byte[] bytes) =>
        store.CommitAsync("_partials/part-000003.stats", (stream, token) => stream.WriteAsync(bytes, token).AsTask(), TestContext.Current.CancellationToken);
}
