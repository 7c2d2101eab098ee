using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Checkpoints;
using WinTok.Worker.Hosting;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Tokenize;

/// <summary>
/// Tokenizes one partition of a tokenize job: load its inputs and the job's model, tokenize the images into a shard,
/// save the shard (create-only) and hand its facts to the partition's commit; whoever commits the last partition writes
/// the manifest. The claim, lease, retries and commit are <see cref="PartitionRunner"/>'s, the same for every job kind.
/// </summary>
internal sealed class TokenizePartitionHandler(
    PartitionRunner runner,
    ResultsRepository results,
    ModelThread model,
    PartitionTokenizer tokenizer,
    TokenizeProgress progress,
    IOptions<WorkerOptions> options,
    IOptions<CheckpointCacheOptions> cache,
    ILogger<TokenizePartitionHandler> logger,
    BlobServiceClient? blobService = null) : IMessageHandler<TokenizePartition>
{
    public Task<HandlerOutcome> HandleAsync(TokenizePartition message, MessageContext context, CancellationToken cancellationToken) =>
        runner.RunAsync(message, context, TokenizeJobSpec.JobKind, TokenizeAsync, WriteManifestAsync, cancellationToken);

    private async Task<PartitionOutput> TokenizeAsync(PartitionWork work, CancellationToken cancellationToken)
    {
        var spec = TokenizeJobSpec.FromJson(work.Job.SpecJson);
        var inputs = CorpusPartition.FromJson(work.Partition.SpecJson ?? throw new InvalidDataException($"partition {work.Partition.Partition} has no recorded inputs"));
        var source = await SourceAsync(spec, cancellationToken);
        var served = await model.LoadAsync(source, cancellationToken);
        var preprocessor = Preprocessor(spec);
        var metadata = Metadata(work.Job.Id, spec, served, preprocessor);
        var writer = new ShardWriter(FileStores.Open(spec.Output, blobService), inputs.Index, metadata);

        Log.TokenizingPartition(logger, work.Job.Id, inputs.Index, served.Device, model.BatchSize);
        var run = new TokenizeRun(inputs, FileStores.Open(spec.Input, blobService), preprocessor, source, spec.SemanticTokens,
            model.BatchSize, options.Value.DecodeThreads > 0 ? options.Value.DecodeThreads : Math.Max(1, Environment.ProcessorCount - 1));
        await tokenizer.RunAsync(run, writer, images =>
        {
            progress.AddImages(images);
            work.Progress.Add(images);
        }, cancellationToken);
        var shard = await writer.CommitAsync(cancellationToken);

        Log.TokenizedPartition(logger, work.Job.Id, inputs.Index, shard.Rows, shard.Failures, shard.Outcome.ToString());
        return new PartitionOutput(shard.Path, shard.Rows, shard.Bytes, shard.Sha256, new CommittedShard(shard, metadata).ToJson(),
            writer.Failures.Select(f => new ItemFailure(f.Key, f.Source, f.Reason, Category(f.ExceptionType))).ToList());
    }

    /// <summary>
    /// The dataset's commit point, written from the partitions' commit records alone: no shard is read back and no model
    /// loaded. Workers that finish at once both write it: the manifest is create-only and identical, so the second write
    /// is a no-op.
    /// </summary>
    private async Task WriteManifestAsync(JobRecord job, CancellationToken cancellationToken)
    {
        var spec = TokenizeJobSpec.FromJson(job.SpecJson);
        var partitions = await results.ListPartitionsAsync(job.Id, cancellationToken);
        var shards = partitions.Select(p => CommittedShard.FromJson(p.ResultJson
            ?? throw new InvalidDataException($"job {job.Id} partition {p.Partition} is committed without a record"))).ToList();
        var manifest = await ManifestWriter.WriteAsync(FileStores.Open(spec.Output, blobService), shards[0].Metadata,
            shards.Select(s => s.Shard), cancellationToken);
        Log.WroteManifest(logger, job.Id, manifest.Totals.Shards, manifest.Totals.Rows, manifest.Totals.Failures);
    }

    /// <summary>A rejection's reason name (<c>NotAnImage</c>) or a read failure's exception type without its namespace.</summary>
    private static string Category(string? exceptionType) => exceptionType is null ? "Unknown" : exceptionType[(exceptionType.LastIndexOf('.') + 1)..];

    private async Task<ModelSource> SourceAsync(TokenizeJobSpec spec, CancellationToken cancellationToken) => new(
        await CheckpointFiles.ResolveAsync(spec.Checkpoint, blobService, cache.Value.CacheFolder, cancellationToken),
        spec.Checkpoint.Sha256, spec.Model.ToLoadOptions());

    private static ImagePreprocessor Preprocessor(TokenizeJobSpec spec) => new(new PreprocessOptions
    {
        ImageSize = spec.ImageSize,
        MaxPixels = spec.MaxPixels,
        ReducedScaleJpegDecode = spec.ReducedScaleJpegDecode,
        KeepDamagedImages = spec.KeepDamagedImages,
    });

    private static ShardMetadata Metadata(Guid jobId, TokenizeJobSpec spec, ServedModel model, ImagePreprocessor preprocessor)
    {
        var d = model.Description;
        var layout = new TokenLayout(d.NumCodebooks, d.CodebookSize, d.PixelTokens, $"{d.GridSize}x{d.GridSize}",
            spec.SemanticTokens ? d.SemanticTokens : 0, spec.SemanticTokens ? d.SemanticWidth : 0);
        var checkpointId = $"{Path.GetFileNameWithoutExtension(spec.Checkpoint.Location.TrimEnd('/'))}@{spec.Checkpoint.ShortHash}";
        return new ShardMetadata(jobId.ToString(), checkpointId, spec.Checkpoint.Sha256, d.Kind, d.ArgsJson, preprocessor.Description,
            layout, spec.CreatedUtc);
    }
}
