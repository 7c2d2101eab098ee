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
    IOptions<EvaluationOptions> evaluation,
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
        EvaluationWeights.Check(request.Metrics, facts.Kind, request.Weights, request.TextTower, evaluation.Value.VerifyWeightHashes);

        var dataset = FileStores.Open(request.Dataset, blobService);
        var kind = request.Kind ?? await TokenizeJobSubmitter.DetectKindAsync(dataset, cancellationToken);
        if (request.Metrics.Contains(EvaluationMetrics.ZeroShot) && kind != CorpusKind.ImageFolder)
            throw new ArgumentException($"zero-shot accuracy needs class labels: {request.Dataset} must be an ImageFolder (one folder per class), not a {kind}");
        var partitions = await CorpusPlanner.PlanAsync(dataset, kind, request.FilesPerPartition, cancellationToken);
        if (partitions.Count == 0) throw new InvalidDataException($"{request.Dataset} holds no images to evaluate");

        var preprocessing = new ImagePreprocessor(new PreprocessOptions { ImageSize = facts.ImageSize }).Description;
        var (epoch, iteration) = TrainingCheckpointNames.Parse(request.Checkpoint);
        var newPartitions = partitions.Select(p => new NewPartition(p.Index, p.ToJson(), p.Files?.Count ?? 0)).ToList();
        var (realStatistics, cached) = request.Metrics.Contains(EvaluationMetrics.Rfid)
            ? await RealStatisticsAsync(request.Dataset, newPartitions, preprocessing, cancellationToken)
            : (null, false);
        var spec = new EvaluateJobSpec(request.Dataset, request.DatasetName ?? DefaultName(request.Dataset), kind, request.FilesPerPartition,
            request.Output, checkpoint, request.Model with { Kind = facts.Kind }, facts.ImageSize, request.Metrics, request.Weights,
            request.TextTower, request.Precision, EvaluateJobSpec.DescribeProtocol(request.Precision, preprocessing),
            preprocessing, request.ScheduleName, epoch, iteration, realStatistics, cached, timeProvider.GetUtcNow());
        return new PlannedJob<EvaluateJobSpec>(spec, newPartitions);
    }

    /// <summary>
    /// Where the dataset's real-image Inception statistics are cached, and whether they are there: keyed by the dataset's
    /// recorded inputs (the partitions' file lists, so a changed dataset gets new statistics), the preprocessing and the
    /// Inception weights' published hash.
    /// </summary>
    private async Task<(string Location, bool Cached)> RealStatisticsAsync(string dataset, IReadOnlyList<NewPartition> partitions,
        string preprocessing, CancellationToken cancellationToken)
    {
        var inception = EvaluationWeights.Files.First(f => f.Metric == EvaluationMetrics.Rfid).Sha256Prefix;
        var identity = string.Join("\n", [dataset, preprocessing, inception, .. partitions.Select(p => p.SpecJson)]);
        var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(identity)))[..24];
        var store = FileStores.Open(evaluation.Value.StatisticsCache, blobService);
        var name = $"real-{key}.stats";
        return (store.Describe(name), await store.GetInfoAsync(name, cancellationToken) is not null);
    }

    public async Task<SubmittedJob> SubmitAsync(PlannedJob<EvaluateJobSpec> job, CancellationToken cancellationToken)
    {
        var row = ToNewJob(job);
        // The job's trace starts here; its traceparent is stored so every partition attempt joins it.
        using var span = JobsTelemetry.StartJob(EvaluateJobSpec.JobKind, row.Id, job.Partitions.Count);
        row = row with { TraceParent = span?.Id };
        await results.CreateJobAsync(row, cancellationToken);
        await results.AddPartitionsAsync(row.Id, job.Partitions, cancellationToken);
        await PublishAsync(row.Id, job.Partitions, cancellationToken);
        return new SubmittedJob(row.Id, job.Partitions.Count);
    }

    /// <summary>
    /// The job row of a plan, with a fresh id, for a caller that records it inside a transaction of its own (a schedule
    /// records it with its slot, so the two cannot diverge) and then publishes it with <see cref="PublishAsync"/>.
    /// </summary>
    public NewJob ToNewJob(PlannedJob<EvaluateJobSpec> job) =>
        new(Guid.CreateVersion7(timeProvider.GetUtcNow()), EvaluateJobSpec.JobKind, job.Spec.ToJson());

    /// <summary>Publishes the first attempt of each partition of a recorded job.</summary>
    public Task PublishAsync(Guid jobId, IReadOnlyCollection<NewPartition> partitions, CancellationToken cancellationToken) =>
        publisher.PublishManyAsync(partitions.Select(p => new EvaluatePartition(jobId, p.Index, 1)).ToList(), cancellationToken);

    /// <summary>The last folder name of a dataset location (<c>/data/imagenet/val</c> gives <c>val</c>).</summary>
    private static string DefaultName(string location) =>
        location.TrimEnd('/', '\\').Split('/', '\\').LastOrDefault(part => part.Length > 0) ?? "dataset";
}
