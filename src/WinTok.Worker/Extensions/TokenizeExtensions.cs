using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Worker.Tokenize;

namespace WinTok.Worker.Extensions;

internal static class TokenizeExtensions
{
    /// <summary>
    /// The tokenize job: options from <c>Tokenize</c>, the model engine (one per process), the partition pipeline, the
    /// submitter, and, with <paramref name="queue"/>, the partition handler as a consumer. Blob locations use the
    /// account of <c>WINTOK_BLOB_CONNECTION</c> (or <c>Storage:ConnectionString</c>) when one is configured.
    /// </summary>
    public static IHostApplicationBuilder AddTokenizeJobs(this IHostApplicationBuilder builder, JobQueueBuilder? queue)
    {
        builder.Services.AddOptions<TokenizeOptions>()
            .BindConfiguration(TokenizeOptions.SectionName)
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TokenizeOptions>, TokenizeOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<TokenizerEngine>();
        builder.Services.TryAddSingleton<PartitionTokenizer>();
        builder.Services.TryAddSingleton<TokenizeProgress>();
        builder.Services.TryAddScoped<TokenizeJobSubmitter>();
        var connection = builder.Configuration["Storage:ConnectionString"] ?? builder.Configuration["WINTOK_BLOB_CONNECTION"];
        if (connection is not null)
            builder.Services.TryAddSingleton(_ => new BlobServiceClient(connection));
        queue?.Handle<TokenizePartition, TokenizePartitionHandler>();
        return builder;
    }
}
