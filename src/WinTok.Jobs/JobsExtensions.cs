using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using WinTok.Contracts;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Tokenize;
using WinTok.Jobs.Train;
using WinTok.Messaging;

namespace WinTok.Jobs;

public static class JobsExtensions
{
    /// <summary>
    /// The control plane over the results database and the job queue (register both first): cancel and retry for
    /// every kind (<see cref="JobControl"/> with each kind's <see cref="IPartitionPublisher"/>), the tokenize submitter,
    /// the checkpoint cache (section <c>Checkpoints</c>) and, when a connection is configured
    /// (<c>Storage:ConnectionString</c> or <c>WINTOK_BLOB_CONNECTION</c>), the blob client for blob locations.
    /// Submitting needs an <see cref="ICheckpointInspector"/>, which the model side registers.
    /// </summary>
    public static IHostApplicationBuilder AddJobControl(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<CheckpointCacheOptions>().BindConfiguration(CheckpointCacheOptions.SectionName);
        builder.Services.AddOptions<EvaluationOptions>().BindConfiguration(EvaluationOptions.SectionName);
        builder.Services.TryAddSingleton(TimeProvider.System);
        var connection = builder.Configuration["Storage:ConnectionString"] ?? builder.Configuration["WINTOK_BLOB_CONNECTION"];
        if (connection is not null)
            builder.Services.TryAddSingleton(_ => new BlobServiceClient(connection));
        builder.Services.TryAddScoped<JobControl>();
        builder.Services.TryAddScoped<TokenizeJobSubmitter>();
        builder.Services.TryAddScoped<EvaluateJobSubmitter>();
        builder.Services.TryAddScoped<TrainJobSubmitter>();
        builder.Services.TryAddKeyedSingleton<IPartitionPublisher>(TokenizeJobSpec.JobKind, (services, _) =>
            new PartitionPublisher<TokenizePartition>(services.GetRequiredService<IMessagePublisher<TokenizePartition>>(),
                (job, partition, attempt) => new TokenizePartition(job, partition, attempt)));
        builder.Services.TryAddKeyedSingleton<IPartitionPublisher>(EvaluateJobSpec.JobKind, (services, _) =>
            new PartitionPublisher<EvaluatePartition>(services.GetRequiredService<IMessagePublisher<EvaluatePartition>>(),
                (job, partition, attempt) => new EvaluatePartition(job, partition, attempt)));
        builder.Services.TryAddKeyedSingleton<IPartitionPublisher>(TrainJobSpec.JobKind, (services, _) =>
            new PartitionPublisher<TrainRun>(services.GetRequiredService<IMessagePublisher<TrainRun>>(),
                (job, partition, attempt) => new TrainRun(job, partition, attempt)));
        return builder;
    }
}
