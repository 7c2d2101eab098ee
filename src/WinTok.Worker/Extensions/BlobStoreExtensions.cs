using Azure.Storage.Blobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using WinTok.Worker.Resilience;
using WinTok.Worker.Storage;

namespace WinTok.Worker.Extensions;

internal static class BlobStoreExtensions
{
    /// <summary>
    /// A keyed <see cref="IBlobStore"/> (<c>[FromKeyedServices("output")] IBlobStore</c>) configured from
    /// <c>BlobStores:{name}</c>: a directory when <c>LocalRoot</c> is set, else an Azure container (connection string
    /// from the section or <c>WINTOK_BLOB_CONNECTION</c>). The Azure SDK's own retries are off; the blob pipeline
    /// retries instead, so the two never multiply.
    /// </summary>
    public static IHostApplicationBuilder AddBlobStore(this IHostApplicationBuilder builder, string name)
    {
        builder.AddWinTokResilience();
        var configuration = builder.Configuration;
        builder.Services.AddOptions<BlobStoreOptions>(name)
            .BindConfiguration($"BlobStores:{name}")
            .PostConfigure(options => options.ConnectionString ??= configuration["WINTOK_BLOB_CONNECTION"])
            .Validate(options => options.LocalRoot is not null || options.ConnectionString is not null,
                $"BlobStores:{name} needs LocalRoot or ConnectionString (or WINTOK_BLOB_CONNECTION)")
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BlobStoreOptions>, BlobStoreOptionsValidator>());
        builder.Services.TryAddKeyedSingleton<IBlobStore>(name, (services, _) =>
        {
            var options = services.GetRequiredService<IOptionsMonitor<BlobStoreOptions>>().Get(name);
            var loggers = services.GetRequiredService<ILoggerFactory>();
            if (options.LocalRoot is { } root)
            {
                return new LocalBlobStore(root, loggers.CreateLogger<LocalBlobStore>());
            }
            return new AzureBlobStore(
                CreateContainerClient(options),
                options,
                services.GetRequiredKeyedService<ResiliencePipeline>(ResiliencePipelineKeys.Blob),
                loggers.CreateLogger<AzureBlobStore>());
        });
        return builder;
    }

    internal static BlobContainerClient CreateContainerClient(BlobStoreOptions options)
    {
        var clientOptions = new BlobClientOptions();
        clientOptions.Retry.MaxRetries = 0;
        clientOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(100);
        return new BlobServiceClient(options.ConnectionString, clientOptions).GetBlobContainerClient(options.Container);
    }
}
