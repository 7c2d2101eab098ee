using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using WinTok.Checkpoints;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Model;
using WinTok.Worker.Messaging;
using WinTok.Worker.Results;

namespace WinTok.Worker.Tokenize;

/// <summary>What a user asks for with <c>wintok tokenize</c> or <c>wintok submit tokenize</c>.</summary>
internal sealed record TokenizeRequest(
    string Input,
    string Output,
    string Checkpoint,
    CorpusKind? Kind = null,
    int FilesPerPartition = CorpusPlanner.DefaultFilesPerPartition,
    string? Encoder = null,
    bool SemanticTokens = false,
    int ImageSize = 0,
    long MaxPixels = 89_478_485,
    bool ReducedScaleJpegDecode = false);

/// <summary>A submitted job: its id and how many partitions were published.</summary>
internal sealed record SubmittedJob(Guid JobId, int Partitions, CorpusKind Kind);

/// <summary>
/// Turns a request into a job: fixes the checkpoint's hash, plans the corpus into deterministic partitions, records the
/// job and its partitions, then publishes one message per partition. Retry reopens what failed and publishes only that.
/// </summary>
internal sealed class TokenizeJobSubmitter(
    ResultsRepository results,
    IMessagePublisher<TokenizePartition> publisher,
    IOptions<TokenizeOptions> options,
    TimeProvider timeProvider,
    BlobServiceClient? blobService = null)
{
    public async Task<SubmittedJob> SubmitAsync(TokenizeRequest request, CancellationToken cancellationToken)
    {
        var checkpoint = await CheckpointFiles.ResolveAsync(request.Checkpoint, blobService, options.Value.CheckpointCache, cancellationToken);
        var imageSize = request.ImageSize > 0 ? request.ImageSize : ImageSizeOf(checkpoint, request.Encoder);
        var input = FileStores.Open(request.Input, blobService);
        var kind = request.Kind ?? await DetectKindAsync(input, cancellationToken);
        var partitions = await CorpusPlanner.PlanAsync(input, kind, request.FilesPerPartition, cancellationToken);
        if (partitions.Count == 0) throw new InvalidOperationException($"{request.Input} holds no images to tokenize");

        var spec = new TokenizeJobSpec(request.Input, request.Output, request.Checkpoint, WinTokCheckpoint.Sha256(checkpoint), kind,
            request.FilesPerPartition, request.Encoder, request.SemanticTokens, imageSize, request.MaxPixels,
            request.ReducedScaleJpegDecode, timeProvider.GetUtcNow());
        var jobId = Guid.CreateVersion7(timeProvider.GetUtcNow());
        await results.CreateJobAsync(new NewJob(jobId, TokenizeJobSpec.JobKind, spec.ToJson()), cancellationToken);
        await results.AddPartitionsAsync(jobId, partitions.Select(p => p.Index).ToList(), cancellationToken);
        await publisher.PublishManyAsync(partitions.Select(p => new TokenizePartition(jobId, p.Index, 1, p.ToJson())).ToList(), cancellationToken);
        return new SubmittedJob(jobId, partitions.Count, kind);
    }

    /// <summary>Reopens the failed (or, for a cancelled job, unfinished) partitions and publishes them again.</summary>
    public async Task<IReadOnlyList<int>> RetryAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var job = await results.GetJobAsync(jobId, cancellationToken) ?? throw new InvalidOperationException($"There is no job {jobId}");
        var spec = TokenizeJobSpec.FromJson(job.SpecJson);
        var reopened = await results.ResetFailedPartitionsAsync(jobId, cancellationToken);
        if (reopened.Count == 0) return reopened;
        var partitions = await CorpusPlanner.PlanAsync(FileStores.Open(spec.Input, blobService), spec.Kind, spec.FilesPerPartition, cancellationToken);
        var attempt = (await results.ListPartitionsAsync(jobId, cancellationToken)).Max(p => p.Attempt) + 1;
        var messages = partitions.Where(p => reopened.Contains(p.Index))
            .Select(p => new TokenizePartition(jobId, p.Index, attempt, p.ToJson())).ToList();
        await publisher.PublishManyAsync(messages, cancellationToken);
        return reopened;
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

    /// <summary>The model's input size, from the checkpoint's args (no model is built).</summary>
    private static int ImageSizeOf(string checkpoint, string? encoder)
    {
        var shape = encoder is null ? null
            : EncoderShape.Presets.TryGetValue(encoder, out var preset) ? preset
            : throw new ArgumentException($"Unknown encoder preset '{encoder}'; choose one of {string.Join(", ", EncoderShape.Presets.Keys)}");
        using var file = CheckpointFile.Read(checkpoint);
        return ReferenceArgs.ToConfig(file.Args, shape).Encoder.ImageSize;
    }
}
