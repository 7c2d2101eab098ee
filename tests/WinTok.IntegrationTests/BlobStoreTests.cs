using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Worker.Extensions;
using WinTok.Worker.Storage;

namespace WinTok.IntegrationTests;

/// <summary>Create-only atomic uploads on Azurite and on a local directory, and retries across an Azurite outage.</summary>
[Collection(ServicesCollection.Name)]
public sealed class BlobStoreTests(ServicesFixture services) : IDisposable
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private readonly List<IHost> hosts = [];
    private readonly string scratch = Directory.CreateTempSubdirectory("wintok-blobs-").FullName;

    public void Dispose()
    {
        foreach (var host in hosts)
        {
            host.Dispose();
        }
        Directory.Delete(scratch, recursive: true);
    }

    [Theory]
    [InlineData("azure")]
    [InlineData("local")]
    public async Task UploadFileAsync_WhenNameExists_IsIdempotentForSameContentAndConflictsOtherwise(string kind)
    {
        var store = await StoreAsync(kind, "create-only");
        var file = WriteFile("a.bin", 10_000, seed: 1);
        var other = WriteFile("b.bin", 10_000, seed: 2);

        var created = await store.UploadFileAsync("shards/part-000001.parquet", file, Token);
        var again = await store.UploadFileAsync("shards/part-000001.parquet", file, Token);
        var conflict = await Assert.ThrowsAsync<BlobConflictException>(() => store.UploadFileAsync("shards/part-000001.parquet", other, Token));

        Assert.Equal(UploadOutcome.Created, created.Outcome);
        Assert.Equal(UploadOutcome.AlreadyPresent, again.Outcome);
        Assert.Equal(created.Sha256, conflict.ExistingSha256);
        Assert.Equal(Sha256(file), created.Sha256);
        Assert.True(await store.ExistsAsync("shards/part-000001.parquet", Token));
        Assert.False(await store.ExistsAsync("shards/part-000002.parquet", Token));
        await using var read = await store.OpenReadAsync("shards/part-000001.parquet", Token);
        Assert.Equal(created.Sha256, Convert.ToHexStringLower(await SHA256.HashDataAsync(read, Token)));
        await Assert.ThrowsAsync<FileNotFoundException>(() => store.OpenReadAsync("shards/missing.parquet", Token));
    }

    [Theory]
    [InlineData("azure")]
    [InlineData("local")]
    public async Task ListAsync_ReturnsObjectsUnderThePrefixInNameOrder(string kind)
    {
        var store = await StoreAsync(kind, "listing");
        await store.UploadBytesAsync("v1/shards/part-000002.parquet", new byte[] { 2 }, Token);
        await store.UploadBytesAsync("v1/shards/part-000001.parquet", new byte[] { 1, 1 }, Token);
        await store.UploadBytesAsync("v1/_manifest.json", "{}"u8.ToArray(), Token);

        var listed = new List<StoredBlob>();
        await foreach (var blob in store.ListAsync("v1/shards/", Token))
        {
            listed.Add(blob);
        }

        Assert.Equal(["v1/shards/part-000001.parquet", "v1/shards/part-000002.parquet"], listed.Select(b => b.Name));
        Assert.Equal([2L, 1L], listed.Select(b => b.Length));
    }

    [Theory]
    [InlineData("azure")]
    [InlineData("local")]
    public async Task UploadFileAsync_WhenTwoWritersRaceWithDifferentContent_OneWinsWholeAndNoPartialIsEverVisible(string kind)
    {
        // Small thresholds force the staged-block path on Azure: 3 MiB in 256 KiB blocks.
        var store = await StoreAsync(kind, "race", singleUploadMaxBytes: 1 << 20, blockBytes: 256 << 10);
        var first = WriteFile("first.bin", 3 << 20, seed: 3);
        var second = WriteFile("second.bin", 3 << 20, seed: 4);
        const string name = "shards/part-000007.parquet";

        using var watching = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var observedLengths = new List<long>();
        var watcher = Task.Run(async () =>
        {
            while (!watching.IsCancellationRequested)
            {
                await foreach (var blob in store.ListAsync("shards/", watching.Token))
                {
                    observedLengths.Add(blob.Length);
                }
            }
        }, Token);
        var uploads = await Task.WhenAll(Attempt(first), Attempt(second));
        await watching.CancelAsync();
        try
        {
            await watcher;
        }
        catch (OperationCanceledException)
        {
            // the watcher stops by cancellation
        }

        Assert.Single(uploads, outcome => outcome == "created");
        Assert.Single(uploads, outcome => outcome == "conflict");
        Assert.All(observedLengths, length => Assert.Equal(3L << 20, length));
        await using var read = await store.OpenReadAsync(name, Token);
        var stored = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, Token));
        Assert.Contains(stored, new[] { Sha256(first), Sha256(second) });

        async Task<string> Attempt(string path)
        {
            try
            {
                await store.UploadFileAsync(name, path, Token);
                return "created";
            }
            catch (BlobConflictException)
            {
                return "conflict";
            }
        }
    }

    [Fact]
    public async Task UploadFileAsync_WhenAzuriteIsDownForSeconds_RetriesUntilItIsBack()
    {
        await services.RequireAzuriteAsync();
        // A private Azurite (deploy/services.sh on its own directory and port): other test projects use the shared one.
        var connection = await ServicesFixture.StartPrivateAzuriteAsync();
        var store = await StoreAsync("azure", "outage", connectionString: connection);
        var file = WriteFile("outage.bin", 50_000, seed: 5);
        await store.UploadBytesAsync($"warm-up-{Guid.NewGuid():N}", new byte[] { 0 }, Token); // the container exists before the outage

        await ServicesFixture.RunServicesScriptAsync("stop-one azurite", privateSet: true);
        var stopwatch = Stopwatch.StartNew();
        var upload = store.UploadFileAsync($"shards/part-{Guid.NewGuid():N}.parquet", file, Token);
        await Task.Delay(TimeSpan.FromSeconds(4), Token);
        Assert.False(upload.IsCompleted);
        await ServicesFixture.RunServicesScriptAsync("start-one azurite", privateSet: true);
        var result = await upload;

        Assert.Equal(UploadOutcome.Created, result.Outcome);
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromSeconds(4));
        Assert.True(await store.ExistsAsync(result.Name, Token));
    }

    private async Task<IBlobStore> StoreAsync(
        string kind, string test, long? singleUploadMaxBytes = null, long? blockBytes = null, string? connectionString = null)
    {
        var settings = new Dictionary<string, string?>();
        if (kind == "azure" && connectionString is not null)
        {
            settings["BlobStores:output:ConnectionString"] = connectionString;
            settings["BlobStores:output:Container"] = $"test-{test}";
        }
        else if (kind == "azure")
        {
            await services.RequireAzuriteAsync();
            var container = await services.ResetContainerAsync($"test-{test}");
            settings["BlobStores:output:ConnectionString"] = services.Blob;
            settings["BlobStores:output:Container"] = container.Name;
            settings["BlobStores:output:Prefix"] = "tokens/";
        }
        else
        {
            settings["BlobStores:output:LocalRoot"] = Path.Combine(scratch, "store");
        }
        if (singleUploadMaxBytes is { } single)
        {
            settings["BlobStores:output:SingleUploadMaxBytes"] = single.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (blockBytes is { } block)
        {
            settings["BlobStores:output:BlockBytes"] = block.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        // Short backoff so the outage test notices Azurite's return within about a second.
        settings["Resilience:Blob:MaxDelay"] = "00:00:01";
        settings["Resilience:Blob:MaxRetryAttempts"] = "60";
        var host = ServicesFixture.BuildHost(settings, builder => builder.AddBlobStore("output"));
        hosts.Add(host);
        return host.Services.GetRequiredKeyedService<IBlobStore>("output");
    }

    private string WriteFile(string name, int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        var path = Path.Combine(scratch, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
