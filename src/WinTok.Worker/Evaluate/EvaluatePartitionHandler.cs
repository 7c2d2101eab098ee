using System.Buffers;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Evaluation;
using WinTok.Evaluation.ZeroShot;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Checkpoints;
using WinTok.Worker.Hosting;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Evaluate;

/// <summary>
/// Evaluates one partition of an evaluation job: load its images and the job's model and metric networks, reconstruct
/// and measure every image on the model thread, save the partition's per-image metrics and partial statistics
/// (create-only) and hand their facts to the partition's commit; whoever commits the last partition merges the partial
/// statistics into the job's numbers, writes metrics.json and records them. The claim, lease, retries and commit are
/// <see cref="PartitionRunner"/>'s.
/// </summary>
internal sealed class EvaluatePartitionHandler(
    PartitionRunner runner,
    ResultsRepository results,
    EvaluationsRepository evaluations,
    ModelThread model,
    IEnumerable<IEvaluationRecordedHook> hooks,
    IOptions<WorkerOptions> options,
    IOptions<CheckpointCacheOptions> cache,
    IOptions<EvaluationOptions> evaluation,
    ILogger<EvaluatePartitionHandler> logger,
    BlobServiceClient? blobService = null) : IMessageHandler<EvaluatePartition>
{
    /// <summary>Image pairs the first partition keeps for grid.png.</summary>
    private const int GridImages = 8;

    public Task<HandlerOutcome> HandleAsync(EvaluatePartition message, MessageContext context, CancellationToken cancellationToken) =>
        runner.RunAsync(message, context, EvaluateJobSpec.JobKind, EvaluateAsync, FinishAsync, cancellationToken);

    private async Task<PartitionOutput> EvaluateAsync(PartitionWork work, CancellationToken cancellationToken)
    {
        var spec = EvaluateJobSpec.FromJson(work.Job.SpecJson);
        var inputs = CorpusPartition.FromJson(work.Partition.SpecJson ?? throw new InvalidDataException($"partition {work.Partition.Partition} has no recorded inputs"));
        var checkpoint = await CheckpointFiles.ResolveAsync(spec.Checkpoint, blobService, cache.Value.CacheFolder, cancellationToken);
        var source = new ModelSource(checkpoint, spec.Checkpoint.Sha256, spec.Model.ToLoadOptions(),
            spec.Precision == EvaluationPrecision.Float32 ? ModelPrecision.Float32 : ModelPrecision.Serving);
        var evaluator = await PartitionEvaluator.BeginAsync(model, source, Settings(spec, checkpoint), inputs.Index == 0 ? GridImages : 0, cancellationToken);
        Log.EvaluatingPartition(logger, work.Job.Id, inputs.Index, model.DeviceName, spec.Precision);

        var failures = new List<FailureRecord>();
        var rows = new List<ImageMetricsRow>();
        void KeptEarlier(string path) => Log.KeptEarlierAttemptsFile(logger, work.Job.Id, path);
        PartitionOutcome outcome;
        try
        {
            await MeasureAsync(spec, inputs, evaluator, failures, rows, work.Progress, cancellationToken);
            outcome = await evaluator.FinishAsync(cancellationToken);
        }
        catch
        {
            await evaluator.AbandonAsync();
            throw;
        }

        var output = FileStores.Open(spec.Output, blobService);
        var perImage = await EarlierAttempts.CommitOrKeepAsync(output,
            () => EvaluationOutputs.WritePerImageAsync(output, inputs.Index, rows, cancellationToken), KeptEarlier, cancellationToken);
        using var partialBytes = new MemoryStream();
        outcome.Metrics.WriteTo(partialBytes);
        var partial = await EarlierAttempts.CommitOrKeepAsync(output, () => output.CommitAsync(EvaluationOutputs.PartialPath(inputs.Index),
            (stream, token) => stream.WriteAsync(partialBytes.ToArray(), token).AsTask(), cancellationToken), KeptEarlier, cancellationToken);
        if (outcome.Grid.Count > 0) await EvaluationOutputs.WriteGridAsync(output, outcome.Grid, spec.ImageSize, cancellationToken);

        Log.EvaluatedPartition(logger, work.Job.Id, inputs.Index, rows.Count, failures.Count);
        var record = new EvaluatedPartition(inputs.Index, rows.Count, failures.Count, partial.Path, partial.Sha256, perImage.Path,
            outcome.ZeroShot?.Top1, outcome.ZeroShot?.Top5);
        return new PartitionOutput(perImage.Path, rows.Count, partial.Bytes + perImage.Bytes, partial.Sha256, record.ToJson(),
            failures.Select(f => new ItemFailure(f.Key, f.Source, f.Reason)).ToList());
    }

    /// <summary>The requested metric a reported value belongs to: <c>lpips_alex</c> to <c>lpips</c>, <c>usage_entropy</c> to <c>usage</c>.</summary>
    private static string MetricFamily(string value) => value.Split('_')[0];

    /// <summary>Streams the partition's images through the evaluator in batches, collecting per-image rows.</summary>
    private async Task MeasureAsync(EvaluateJobSpec spec, CorpusPartition inputs, PartitionEvaluator evaluator, List<FailureRecord> failures,
        List<ImageMetricsRow> rows, PartitionProgress progress, CancellationToken cancellationToken)
    {
        var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = spec.ImageSize });
        var batchSize = model.BatchSize;
        var decodeThreads = options.Value.DecodeThreads > 0 ? options.Value.DecodeThreads : Math.Max(1, Environment.ProcessorCount - 1);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var decoded = PartitionImages.CreateChannel(batchSize * 2);
        // In read order: which images share a batch moves the reference's batch-mean PSNR and SSIM, and every attempt of
        // the partition must compute the same numbers and write the same files.
        var images = new PartitionImages(inputs, FileStores.Open(spec.Dataset, blobService), preprocessor, decodeThreads, batchSize * 2, failure =>
        {
            lock (failures) failures.Add(failure);
        }, inReadOrder: true);
        var decoding = images.RunAsync(decoded.Writer, stop.Token);
        var batch = new List<DecodedImage>(batchSize);
        try
        {
            await foreach (var image in decoded.Reader.ReadAllAsync(stop.Token))
            {
                batch.Add(image);
                if (batch.Count == batchSize) await MeasureBatchAsync(evaluator, batch, preprocessor.ValuesPerImage, rows, progress, stop.Token);
            }
            if (batch.Count > 0) await MeasureBatchAsync(evaluator, batch, preprocessor.ValuesPerImage, rows, progress, stop.Token);
            await decoding;
        }
        catch
        {
            await stop.CancelAsync();
            foreach (var image in batch) ArrayPool<byte>.Shared.Return(image.Levels);
            throw;
        }
    }

    private static async Task MeasureBatchAsync(PartitionEvaluator evaluator, List<DecodedImage> batch, int perImage, List<ImageMetricsRow> rows,
        PartitionProgress progress, CancellationToken cancellationToken)
    {
        var levels = new byte[batch.Count * perImage];
        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].Levels.AsSpan(0, perImage).CopyTo(levels.AsSpan(i * perImage, perImage));
            ArrayPool<byte>.Shared.Return(batch[i].Levels);
        }
        var labels = batch.Select(image => image.Sample.Label ?? -1).ToArray();
        var values = await evaluator.AddAsync(levels, batch.Count, labels, cancellationToken);
        for (var i = 0; i < batch.Count; i++)
        {
            var sample = batch[i].Sample;
            rows.Add(new ImageMetricsRow(sample.Key, sample.Source, sample.Label, values.Psnr[i], values.Ssim[i],
                values.Lpips.TryGetValue("alex", out var alex) ? alex[i] : null, values.Lpips.TryGetValue("vgg", out var vgg) ? vgg[i] : null,
                values.Top1?[i], values.Top5Hit?[i]));
        }
        progress.Add(batch.Count);
        batch.Clear();
    }

    /// <summary>
    /// Merges every partition's statistics into the job's numbers, writes metrics.json, caches the real-image statistics
    /// when this job computed them, records the evaluation with its values (once: a repeated finish records nothing), then
    /// tells the <see cref="IEvaluationRecordedHook"/>s (the schedules' regression check).
    /// </summary>
    private async Task FinishAsync(JobRecord job, CancellationToken cancellationToken)
    {
        var spec = EvaluateJobSpec.FromJson(job.SpecJson);
        var output = FileStores.Open(spec.Output, blobService);
        var records = (await results.ListPartitionsAsync(job.Id, cancellationToken)).Select(p => EvaluatedPartition.FromJson(p.ResultJson
            ?? throw new InvalidDataException($"job {job.Id} partition {p.Partition} is committed without a record"))).ToList();
        var partials = new List<byte[]>(records.Count);
        foreach (var record in records) partials.Add(await ReadAllAsync(output, record.PartialPath, cancellationToken));
        var realStatistics = spec.RealStatisticsCached && spec.RealStatistics is { } cached ? await ReadLocationAsync(cached, cancellationToken) : null;
        ZeroShotCounts? zeroShot = spec.Wants(EvaluationMetrics.ZeroShot)
            ? new ZeroShotCounts(records.Sum(r => r.ZeroShotTop1 ?? 0), records.Sum(r => r.ZeroShotTop5 ?? 0), records.Sum(r => r.Images))
            : null;
        var summary = await EvaluationSummaries.SummarizeAsync(model, partials, realStatistics, zeroShot, cancellationToken);
        // PSNR and SSIM come with every pass (they cost nothing beside the reconstructions), but only what was asked for is
        // reported: a schedule that asked for rFID alone must not be judged on numbers nobody requested.
        var final = summary with
        {
            Values = summary.Values.Where(pair => spec.Wants(MetricFamily(pair.Key))).ToDictionary(),
            Details = summary.Details.Where(pair => spec.Wants(MetricFamily(pair.Key))).ToDictionary(),
        };

        if (final.RealStatistics is { } computed && spec.RealStatistics is { } location)
            await WriteLocationAsync(location, computed, cancellationToken);
        var images = records.Sum(r => r.Images);
        var failures = records.Sum(r => r.Failures);
        var details = final.Details.ToDictionary(pair => pair.Key, pair => System.Text.Json.JsonDocument.Parse(pair.Value).RootElement.Clone());
        await EvaluationOutputs.WriteMetricsAsync(output, new EvaluationReport(job.Id, spec.Checkpoint.Location, spec.Checkpoint.Sha256,
            spec.Model.Kind ?? "", spec.Dataset, spec.DatasetName, spec.Preprocessing, spec.Protocol, spec.Precision, images, failures,
            final.Values, details), cancellationToken);
        await evaluations.RecordAsync(new NewEvaluation(job.Id, spec.Checkpoint.Sha256, spec.Checkpoint.Location, spec.Model.Kind ?? "",
                spec.Dataset, spec.DatasetName, spec.Preprocessing, spec.Protocol, images, spec.ScheduleName, spec.TrainingEpoch, spec.TrainingIteration),
            final.Values.Select(pair => new MetricValue(pair.Key, pair.Value, final.Details.GetValueOrDefault(pair.Key))).ToList(), cancellationToken);
        Log.FinishedEvaluation(logger, job.Id, images, string.Join(", ", final.Values.Select(pair => $"{pair.Key}={pair.Value:G6}")));
        // At every finish, not only the one that recorded: the job is marked succeeded only after this returns, so a
        // finisher that recorded and then died (or whose hook failed) leaves the job to the redelivered message, whose
        // finish records nothing new but must still run the hooks. They are idempotent (IEvaluationRecordedHook).
        foreach (var hook in hooks) await hook.OnEvaluationRecordedAsync(job.Id, cancellationToken);
    }

    private EvaluationSettings Settings(EvaluateJobSpec spec, string checkpoint)
    {
        string? Weight(string name) => EvaluationWeights.PathOf(spec.Weights, name);
        var lpips = spec.Wants(EvaluationMetrics.Lpips);
        var rfid = spec.Wants(EvaluationMetrics.Rfid);
        var files = new EvaluationWeightFiles
        {
            Inception = rfid ? Weight("pt_inception-2015-12-05-6726825d.pth") : null,
            LpipsAlexBackbone = lpips ? Weight("alexnet-owt-7be5be79.pth") : null,
            LpipsAlexHeads = lpips ? Weight("lpips/alex.pth") : null,
            LpipsVggBackbone = lpips ? Weight("vgg16-397923af.pth") : null,
            LpipsVggHeads = lpips ? Weight("lpips/vgg.pth") : null,
        };
        return new EvaluationSettings(files, RealFeatures: rfid && !spec.RealStatisticsCached, CountUsage: spec.Wants(EvaluationMetrics.Usage),
            ZeroShot: spec.Wants(EvaluationMetrics.ZeroShot), spec.TextTower, checkpoint, evaluation.Value.ClassifierCache,
            spec.Model.ToLoadOptions(), spec.Checkpoint.Sha256);
    }

    private static async Task<byte[]> ReadAllAsync(IFileStore store, string path, CancellationToken cancellationToken)
    {
        await using var stream = await store.OpenReadAsync(path, cancellationToken);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy, cancellationToken);
        return copy.ToArray();
    }

    private Task<byte[]> ReadLocationAsync(string location, CancellationToken cancellationToken)
    {
        var (folder, name) = Split(location);
        return ReadAllAsync(FileStores.Open(folder, blobService), name, cancellationToken);
    }

    /// <summary>Create-only: two finishers of two jobs on the same dataset write identical statistics, so either wins.</summary>
    private async Task WriteLocationAsync(string location, byte[] bytes, CancellationToken cancellationToken)
    {
        var (folder, name) = Split(location);
        try
        {
            await FileStores.Open(folder, blobService).CommitAsync(name, (stream, token) => stream.WriteAsync(bytes, token).AsTask(), cancellationToken);
        }
        catch (CommitConflictException)
        {
            // another job cached statistics of the same images, summed in another order: equal to float64 rounding; keep theirs
        }
    }

    private static (string Folder, string Name) Split(string location)
    {
        var slash = location.LastIndexOfAny(['/', '\\']);
        return (location[..slash], location[(slash + 1)..]);
    }
}
