using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs.Tokenize;

/// <summary>What a user asks for with <c>wintok tokenize</c> or <c>wintok submit tokenize</c>.</summary>
public sealed record TokenizeRequest(
    string Input,
    string Output,
    string Checkpoint,
    ModelChoice Model,
    CorpusKind? Kind = null,
    int FilesPerPartition = CorpusPlanner.DefaultFilesPerPartition,
    bool SemanticTokens = false,
    long MaxPixels = 89_478_485,
    bool ReducedScaleJpegDecode = false,
    bool KeepDamagedImages = false);

/// <summary>A job ready to submit: its spec and its partitions, all validated, nothing recorded yet.</summary>
public sealed record PlannedJob<TSpec>(TSpec Spec, IReadOnlyList<NewPartition> Partitions);

/// <summary>A submitted job: its id and how many partitions were published.</summary>
public sealed record SubmittedJob(Guid JobId, int Partitions);

/// <summary>
/// Turns a request into a job in two steps, so a rejected request leaves nothing behind: <see cref="PlanAsync"/> fixes
/// the checkpoint's identity and configuration and plans the corpus into deterministic partitions (it writes nothing);
/// <see cref="SubmitAsync"/> records the job and its partitions with their inputs, then publishes one message each.
/// </summary>
public sealed class TokenizeJobSubmitter(
    ResultsRepository results,
    IMessagePublisher<TokenizePartition> publisher,
    ICheckpointInspector inspector,
    IOptions<CheckpointCacheOptions> cache,
    TimeProvider timeProvider,
    BlobServiceClient? blobService = null)
{
    public async Task<PlannedJob<TokenizeJobSpec>> PlanAsync(TokenizeRequest request, CancellationToken cancellationToken)
    {
        var (checkpoint, local) = await CheckpointFiles.ReferenceAsync(request.Checkpoint, blobService, cache.Value.CacheFolder, cancellationToken);
        var facts = inspector.Inspect(local, request.Model);
        var input = FileStores.Open(request.Input, blobService);
        var kind = request.Kind ?? await DetectKindAsync(input, cancellationToken);
        var partitions = await CorpusPlanner.PlanAsync(input, kind, request.FilesPerPartition, cancellationToken);
        if (partitions.Count == 0) throw new InvalidDataException($"{request.Input} holds no images to tokenize");
        var model = request.Model with { Kind = facts.Kind };
        var spec = new TokenizeJobSpec(request.Input, request.Output, checkpoint, model, kind, request.FilesPerPartition,
            request.SemanticTokens, facts.ImageSize, request.MaxPixels, request.ReducedScaleJpegDecode, timeProvider.GetUtcNow(),
            request.KeepDamagedImages);
        return new PlannedJob<TokenizeJobSpec>(spec, partitions.Select(p => new NewPartition(p.Index, p.ToJson(), p.Files?.Count ?? 0)).ToList());
    }

    public async Task<SubmittedJob> SubmitAsync(PlannedJob<TokenizeJobSpec> job, CancellationToken cancellationToken)
    {
        var jobId = Guid.CreateVersion7(timeProvider.GetUtcNow());
        using var span = JobsTelemetry.StartJob(TokenizeJobSpec.JobKind, jobId, job.Partitions.Count);
        await results.CreateJobAsync(new NewJob(jobId, TokenizeJobSpec.JobKind, job.Spec.ToJson(), span?.Id), cancellationToken);
        await results.AddPartitionsAsync(jobId, job.Partitions, cancellationToken);
        await publisher.PublishManyAsync(job.Partitions.Select(p => new TokenizePartition(jobId, p.Index, 1)).ToList(), cancellationToken);
        return new SubmittedJob(jobId, job.Partitions.Count);
    }

    /// <summary>Tars mean WebDataset; only class folders of images mean ImageFolder; anything else is a folder of images.</summary>
    internal static async Task<CorpusKind> DetectKindAsync(IFileStore input, CancellationToken cancellationToken)
    {
        var sawTopLevelImage = false;
        var sawNestedImage = false;
        await foreach (var file in input.ListAsync("", cancellationToken))
        {
            if (file.Path.EndsWith(".tar", StringComparison.OrdinalIgnoreCase)) return CorpusKind.WebDataset;
            if (!CorpusPlanner.IsImage(file.Path)) continue;
            var depth = file.Path.Count(c => c == '/');
            sawTopLevelImage |= depth == 0;
            sawNestedImage |= depth == 1;
        }
        return sawNestedImage && !sawTopLevelImage ? CorpusKind.ImageFolder : CorpusKind.Folder;
    }
}
