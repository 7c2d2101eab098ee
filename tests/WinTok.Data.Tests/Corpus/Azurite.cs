using Azure.Storage.Blobs;

namespace WinTok.Data.Tests.Corpus;

/// <summary>
/// The Azurite blob emulator started by deploy/services.sh: connection string from WINTOK_BLOB_CONNECTION, else the
/// emulator's well-known development account on 127.0.0.1:10000. When it cannot be reached the test is skipped
/// locally but fails when CI is set, so CI never passes by skipping.
/// </summary>
internal static class Azurite
{
    private const string DefaultConnection =
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    public static BlobServiceClient Service { get; } = new(
        Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION") is { Length: > 0 } c ? c : DefaultConnection,
        new BlobClientOptions { Retry = { MaxRetries = 1, NetworkTimeout = TimeSpan.FromSeconds(10) } });

    /// <summary>A new, empty container for one test (state reset before the test, left behind as evidence).</summary>
    public static async Task<BlobContainerClient> NewContainerAsync(CancellationToken cancellationToken)
    {
        try
        {
            var container = Service.GetBlobContainerClient($"t{Guid.NewGuid():N}");
            await container.CreateAsync(cancellationToken: cancellationToken);
            return container;
        }
        catch (Exception e) when (e is Azure.RequestFailedException or HttpRequestException or AggregateException or TaskCanceledException
                                      && !cancellationToken.IsCancellationRequested)
        {
            var message = $"Azurite is not reachable at {Service.Uri} ({e.GetType().Name}); start it with bash deploy/services.sh start";
            if (Environment.GetEnvironmentVariable("CI") is { Length: > 0 })
            {
                Assert.Fail(message);
            }

            Assert.Skip(message);
            throw;
        }
    }
}
