using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs.Evaluate;

/// <summary>What a user (or a schedule) asks for with <c>wintok evaluate</c> or <c>wintok submit evaluate</c>.</summary>
/// <param name="Checkpoint">The checkpoint, local or blob.</param>
/// <param name="Dataset">The images: a folder, an ImageFolder (class folders, for zero-shot labels) or WebDataset tars.</param>
/// <param name="Output">Where metrics.json, per-image metrics, the grid and the partial statistics go.</param>
/// <param name="Metrics">Which metrics (<see cref="EvaluationMetrics"/>).</param>
/// <param name="Weights">The folder of the metric networks' weight files (docs/evaluation.md).</param>
/// <param name="TextTower">WinTok zero-shot: an HF SigLIP2 folder.</param>
/// <param name="DatasetName">The name results are grouped by; default the dataset folder's name.</param>
public sealed record EvaluateRequest(
    string Checkpoint,
    string Dataset,
    string Output,
    ModelChoice Model,
    IReadOnlyList<string> Metrics,
    string? Weights = null,
    string? TextTower = null,
    string Precision = EvaluationPrecision.Float32,
    string? DatasetName = null,
    CorpusKind? Kind = null,
    int FilesPerPartition = 1000,
    string? ScheduleName = null);

/// <summary>
/// Turns an evaluation request into a job, in the same two steps as tokenize (<see cref="PlanAsync"/> checks
/// everything and writes nothing; <see cref="SubmitAsync"/> records and publishes). A metric whose weight file is
/// missing fails here, before any work, naming the file and what was expected (<see cref="EvaluationWeights"/>).
/// </summary>
public sealed class EvaluateJobSubmitter(
    ResultsRepository results,
    IMessagePublisher<EvaluatePartition> publisher,
    ICheckpointInspector inspector,
    IOptions<CheckpointCacheOptions> cache,
    TimeProvider timeProvider,
    BlobServiceClient? blobService = null)
{
    public async Task<PlannedJob<EvaluateJobSpec>> PlanAsync(EvaluateRequest request, CancellationToken cancellationToken)
    {
        if (!EvaluationPrecision.All.Contains(request.Precision))
            throw new ArgumentException($"unknown precision '{request.Precision}'; choose {string.Join(" or ", EvaluationPrecision.All)}");
        if (request.FilesPerPartition < 1) throw new ArgumentException($"files per partition must be at least 1, got {request.FilesPerPartition}");
        var (checkpoint, local) = await CheckpointFiles.ReferenceAsync(request.Checkpoint, blobService, cache.Value.CacheFolder, cancellationToken);
        var facts = inspector.Inspect(local, request.Model);
        EvaluationWeights.Check(request.Metrics, facts.Kind, request.Weights, request.TextTower);

        var dataset = FileStores.Open(request.Dataset, blobService);
        var kind = request.Kind ?? await TokenizeJobSubmitter.DetectKindAsync(dataset, cancellationToken);
        if (request.Metrics.Contains(EvaluationMetrics.ZeroShot) && kind != CorpusKind.ImageFolder)
            throw new ArgumentException($"zero-shot accuracy needs class labels: {request.Dataset} must be an ImageFolder (one folder per class), not a {kind}");
        var partitions = await CorpusPlanner.PlanAsync(dataset, kind, request.FilesPerPartition, cancellationToken);
        if (partitions.Count == 0) throw new InvalidDataException($"{request.Dataset} holds no images to evaluate");

        var preprocessing = new ImagePreprocessor(new PreprocessOptions { ImageSize = facts.ImageSize }).Description;
        var (epoch, iteration) = TrainingCheckpointNames.Parse(request.Checkpoint);
        var spec = new EvaluateJobSpec(request.Dataset, request.DatasetName ?? DefaultName(request.Dataset), kind, request.FilesPerPartition,
            request.Output, checkpoint, request.Model with { Kind = facts.Kind }, facts.ImageSize, request.Metrics, request.Weights,
            request.TextTower, request.Precision, EvaluateJobSpec.DescribeProtocol(request.Precision, preprocessing, request.Metrics),
            preprocessing, request.ScheduleName, epoch, iteration, timeProvider.GetUtcNow());
        return new PlannedJob<EvaluateJobSpec>(spec, partitions.Select(p => new NewPartition(p.Index, p.ToJson(), p.Files?.Count ?? 0)).ToList());
    }

    public async Task<SubmittedJob> SubmitAsync(PlannedJob<EvaluateJobSpec> job, CancellationToken cancellationToken)
    {
        var jobId = Guid.CreateVersion7(timeProvider.GetUtcNow());
        using var span = JobsTelemetry.StartJob(EvaluateJobSpec.JobKind, jobId, job.Partitions.Count);
        await results.CreateJobAsync(new NewJob(jobId, EvaluateJobSpec.JobKind, job.Spec.ToJson(), span?.Id), cancellationToken);
        await results.AddPartitionsAsync(jobId, job.Partitions, cancellationToken);
        await publisher.PublishManyAsync(job.Partitions.Select(p => new EvaluatePartition(jobId, p.Index, 1)).ToList(), cancellationToken);
        return new SubmittedJob(jobId, job.Partitions.Count);
    }

    /// <summary>The last folder name of a dataset location (<c>/data/imagenet/val</c> gives <c>val</c>).</summary>
    private static string DefaultName(string location) =>
        location.TrimEnd('/', '\\').Split('/', '\\').LastOrDefault(part => part.Length > 0) ?? "dataset";
}
