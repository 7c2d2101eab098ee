using System.Diagnostics;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Checkpoints;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Training;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Train;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Training;
using WinTok.Worker.Hosting;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Train;

/// <summary>
/// Runs a training job: its one partition is the whole run, claimed under a lease that the runner renews every few
/// seconds for as long as the run lasts. Load (weights by content hash, the run's data plan, the networks on the model
/// thread, the newest checkpoint of the output folder), train (batches decoded on CPU threads ahead of the model thread,
/// losses to the results database and TensorBoard every <c>log_every</c> iterations, a checkpoint every
/// <c>save_every</c> with an evaluation job when asked), save (<c>ckpt-last.pth</c>). A redelivered message after a dead
/// worker resumes from the newest checkpoint; cancelling the job, shutting the worker down or reaching the handler
/// timeout writes a checkpoint of the iteration reached before the run lets go.
/// </summary>
internal sealed class TrainRunHandler(
    [FromKeyedServices(TrainRunHandler.RunnerKey)] PartitionRunner runner,
    ResultsRepository results,
    TrainingMetricsRepository metrics,
    EvaluateJobSubmitter evaluations,
    ModelThread model,
    IOptions<WorkerOptions> options,
    IOptions<CheckpointCacheOptions> cache,
    ILogger<TrainRunHandler> logger,
    BlobServiceClient? blobService = null) : IMessageHandler<TrainRun>
{
    /// <summary>The runner of training runs: the rules of every partition without the Partition pipeline's total timeout.</summary>
    public const string RunnerKey = "TrainRun";

    /// <summary>Distinct unreadable inputs recorded with the run's commit, at most.</summary>
    private const int MaxRecordedFailures = 1000;

    /// <summary>Storage hiccups in a row the data stream rides out (restarting at its position) before the run fails over.</summary>
    private const int DataRetries = 6;

    private CancellationToken messageToken;

    public Task<HandlerOutcome> HandleAsync(TrainRun message, MessageContext context, CancellationToken cancellationToken)
    {
        messageToken = cancellationToken; // shutdown and the handler timeout: the run checkpoints before it lets go
        return runner.RunAsync(message, context, TrainJobSpec.JobKind, TrainAsync, (_, _) => Task.CompletedTask, cancellationToken);
    }

    private async Task<PartitionOutput> TrainAsync(PartitionWork work, CancellationToken cancellationToken)
    {
        var jobId = work.Job.Id;
        var spec = TrainJobSpec.FromJson(work.Job.SpecJson);
        CheckDevice(spec);
        var files = await FilesAsync(spec, cancellationToken);
        Directory.CreateDirectory(spec.Output);
        await RunRecord.ClaimAsync(spec.Output, jobId, cancellationToken);
        var plan = await TrainingData.LoadOrPlanAsync(spec.Output, spec.TrainData, spec.FilesPerPartition, blobService, cancellationToken);

        Log.StartingRun(logger, jobId, model.DeviceName, spec.MaxIterations, spec.LocalBatch, plan.Count);
        await using var session = await TrainingOnThread.StartAsync(model, new TrainingSetup(spec.ArgsJson, spec.IterationsPerEpoch, files,
            (ulong)spec.Seed, spec.DinoHeads), cancellationToken);
        var run = new RunState();
        foreach (var checkpoint in RunFiles.Checkpoints(spec.Output, spec.IterationsPerEpoch, spec.MaxIterations))
        {
            // Newest first; one that cannot be read (a damaged disk) gives way to the one before it.
            try
            {
                var resumed = await session.ResumeAsync(checkpoint, cancellationToken);
                run.ResumeAt(resumed.NextIteration, resumed.DataPosition is { } json ? TrainingDataPosition.FromJson(json) : TrainingDataPosition.Start, checkpoint);
                Log.ResumedRun(logger, jobId, checkpoint, resumed.NextIteration, run.Position.ToString());
                break;
            }
            catch (CheckpointFormatException e)
            {
                Log.UnreadableCheckpoint(logger, e, jobId, checkpoint);
            }
        }
        work.Progress.Add((int)Math.Min(int.MaxValue, run.Iteration * spec.LocalBatch));

        var tensorBoard = spec.TensorBoard ? new TensorBoardLog(Path.Combine(spec.Output, RunFiles.TensorBoard)) : null;
        var batches = new TrainingBatches(
            new TrainingSampleReader(plan, new TrainingDataOptions((ulong)spec.Seed, ShuffleBuffer: spec.ShuffleBuffer), location => FileStores.Open(location, blobService)),
            new TrainingPreprocessor(spec.ImageSize, new CropRanges(ScaleMin: spec.CropScaleMin), spec.MaxPixels),
            spec.LocalBatch, DecodeThreads(), readAhead: spec.LocalBatch * 4);
        try
        {
            if (run.Iteration < spec.MaxIterations)
                await TrainUntilDoneAsync(work, spec, session, batches, run, tensorBoard, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Cancelled, stopping or timed out, not a lost lease: keep what this attempt trained since its last checkpoint
            // (a lost lease means another worker may own the run now, whose checkpoints must not be overwritten).
            if (messageToken.IsCancellationRequested || await IsCancelledAsync(jobId))
            {
                if (run.Iteration > run.SavedIteration) await SaveAsync(jobId, spec, session, run, CancellationToken.None);
                Log.StoppedRun(logger, jobId, run.Iteration, run.Checkpoint ?? "(none: nothing trained yet)");
            }
            throw;
        }

        var last = Path.Combine(spec.Output, RunFiles.LastCheckpoint);
        Log.FinishedRun(logger, jobId, run.Iteration, last);
        var final = await metrics.LatestAsync(jobId, cancellationToken);
        var record = new TrainedRun(run.Iteration, run.Iteration * spec.LocalBatch, last, final?.Values, run.Evaluations);
        return new PartitionOutput(last, run.Iteration * spec.LocalBatch, File.Exists(last) ? new FileInfo(last).Length : 0, null,
            JsonSerializer.Serialize(record, WorkerJsonContext.Default.TrainedRun), run.Failures.Values.ToList());
    }

    /// <summary>
    /// Trains to the end. A storage hiccup reading the data (a blob corpus) restarts the data stream where it stood, after a
    /// growing pause, without reloading the networks; a run of them fails over to a redelivery, which resumes from the
    /// newest checkpoint.
    /// </summary>
    private async Task TrainUntilDoneAsync(PartitionWork work, TrainJobSpec spec, TrainingOnThread session, TrainingBatches batches, RunState run,
        TensorBoardLog? tensorBoard, CancellationToken cancellationToken)
    {
        for (var failures = 0; run.Iteration < spec.MaxIterations;)
        {
            var before = run.Iteration;
            try
            {
                await TrainFromAsync(work, spec, session, batches, run, tensorBoard, cancellationToken);
            }
            catch (Exception e) when (PartitionRules.IsTransientStorage(e) && !cancellationToken.IsCancellationRequested)
            {
                failures = run.Iteration > before ? 1 : failures + 1;
                if (failures > DataRetries) throw;
                Log.DataStreamRestarting(logger, e, work.Job.Id, run.Position.ToString(), failures);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(60, 2 << failures)), cancellationToken);
            }
        }
    }

    private async Task TrainFromAsync(PartitionWork work, TrainJobSpec spec, TrainingOnThread session, TrainingBatches batches, RunState run,
        TensorBoardLog? tensorBoard, CancellationToken cancellationToken)
    {
        var window = Stopwatch.StartNew();
        var windowImages = 0L;
        await foreach (var batch in batches.ReadAsync(run.Position, cancellationToken))
        {
            var result = await session.StepAsync(batch.Values, batch.Count, run.Iteration, cancellationToken);
            var finished = run.Iteration;
            run.Advance(batch);
            work.Progress.Add(batch.Count);
            windowImages += batch.Count;
            foreach (var failure in batch.Failures) Log.SkippedInput(logger, work.Job.Id, failure.Source, failure.Reason);

            if (spec.LogsAfter(finished))
            {
                var values = new Dictionary<string, double>(result.Scalars())
                {
                    ["images_per_second"] = windowImages / Math.Max(1e-9, window.Elapsed.TotalSeconds),
                };
                // The iteration is done: what it computed is recorded even when a stop is under way (a resume will not redo it).
                await metrics.RecordAsync(work.Job.Id, finished, values, CancellationToken.None);
                tensorBoard?.Write(finished, values);
                Log.TrainedIteration(logger, work.Job.Id, finished + 1, spec.MaxIterations, result.Lnll, result.LvTotal, result.LdTotal, values["images_per_second"]);
                (window, windowImages) = (Stopwatch.StartNew(), 0);
            }
            if (spec.SavesAfter(finished))
            {
                var path = await SaveAsync(work.Job.Id, spec, session, run, CancellationToken.None);
                RunRecord.Prune(spec, path);
                if (spec.EvaluatesAfter(finished) && await EvaluateAsync(work.Job.Id, spec, path, cancellationToken) is { } evaluation)
                    run.Evaluations.Add(evaluation.ToString());
            }
            if (run.Iteration >= spec.MaxIterations) return;
        }
    }

    /// <summary>Writes the checkpoint of the iteration reached (and its safetensors weights when asked).</summary>
    private async Task<string> SaveAsync(Guid jobId, TrainJobSpec spec, TrainingOnThread session, RunState run, CancellationToken cancellationToken)
    {
        var path = Path.Combine(spec.Output, RunFiles.CheckpointName(run.Iteration - 1, spec.IterationsPerEpoch, spec.MaxIterations));
        var clock = Stopwatch.StartNew();
        await session.SaveAsync(path, new TrainingSavePoint(run.Iteration, run.Position.ToJson()),
            spec.SaveSafetensors ? RunFiles.WeightsName(path) : null, cancellationToken);
        run.Saved(path);
        Log.SavedCheckpoint(logger, jobId, run.Iteration, path, clock.ElapsedMilliseconds);
        return path;
    }

    /// <summary>Submits the evaluation of a checkpoint (its safetensors weights when written); a refusal is logged, not fatal.</summary>
    private async Task<Guid?> EvaluateAsync(Guid jobId, TrainJobSpec spec, string checkpoint, CancellationToken cancellationToken)
    {
        var template = spec.Evaluation!;
        var weights = RunFiles.WeightsName(checkpoint);
        var model = File.Exists(weights) ? weights : checkpoint;
        var output = Path.Combine(spec.Output, RunFiles.Evaluations, Path.GetFileNameWithoutExtension(checkpoint));
        try
        {
            Directory.CreateDirectory(output);
            var request = new EvaluateRequest(model, template.Dataset, output, ModelChoice.Detect, template.Metrics, template.Weights,
                template.TextTower, template.Precision, template.DatasetName, FilesPerPartition: template.FilesPerPartition);
            var planned = await evaluations.PlanAsync(request, cancellationToken);
            var submitted = await evaluations.SubmitAsync(planned, cancellationToken);
            Log.SubmittedEvaluation(logger, jobId, checkpoint, submitted.JobId);
            return submitted.JobId;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException)
        {
            Log.EvaluationRefused(logger, e, jobId, checkpoint);
            return null;
        }
    }

    private async Task<bool> IsCancelledAsync(Guid jobId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            return (await results.GetJobAsync(jobId, timeout.Token))?.Status == JobStatus.Cancelled;
        }
        catch (Exception e) when (ResultsDatabase.IsTransient(e) || e is TimeoutException or OperationCanceledException)
        {
            return false; // the database is what failed, most likely the lease with it: not a cancel to checkpoint for
        }
    }

    /// <summary>The run's weight files on local disk: local paths as they are (checked unchanged), blobs from the cache.</summary>
    private async Task<TrainingFiles> FilesAsync(TrainJobSpec spec, CancellationToken cancellationToken)
    {
        async Task<string?> Resolve(CheckpointReference? reference) => reference is null ? null
            : await CheckpointFiles.ResolveAsync(reference, blobService, cache.Value.CacheFolder, cancellationToken);
        var w = spec.Weights;
        return new TrainingFiles((await Resolve(w.TeacherConfig))!, (await Resolve(w.TeacherWeights))!, await Resolve(w.Lpips),
            (await Resolve(w.Dino))!, await Resolve(w.Init));
    }

    /// <summary>A run that asks for a device kind this worker's model thread does not run on fails at once, naming both.</summary>
    private void CheckDevice(TrainJobSpec spec)
    {
        var actual = model.DeviceName;
        var fits = spec.Device switch
        {
            "auto" => true,
            "cpu" => actual == "cpu",
            "cuda" => actual.StartsWith("cuda", StringComparison.Ordinal),
            var exact => actual == exact,
        };
        if (!fits)
            throw new ArgumentException($"the run asks for device {spec.Device}, but this worker's model thread runs on {actual} (Model:Device)");
    }

    private int DecodeThreads() => options.Value.DecodeThreads > 0 ? options.Value.DecodeThreads : Math.Max(1, Environment.ProcessorCount - 1);

    /// <summary>Where the run stands: the next iteration, the data position after the last batch, what was saved and skipped.</summary>
    private sealed class RunState
    {
        public long Iteration { get; private set; }

        public TrainingDataPosition Position { get; private set; } = TrainingDataPosition.Start;

        /// <summary>The iteration the newest checkpoint continues with (a run at iteration 0 has nothing to lose).</summary>
        public long SavedIteration { get; private set; }

        public Dictionary<string, ItemFailure> Failures { get; } = [];

        public List<string> Evaluations { get; } = [];

        /// <summary>The newest checkpoint of the run, written or resumed from by this attempt.</summary>
        public string? Checkpoint { get; private set; }

        public void ResumeAt(long iteration, TrainingDataPosition position, string checkpoint) =>
            (Iteration, Position, SavedIteration, Checkpoint) = (iteration, position, iteration, checkpoint);

        public void Advance(TrainingBatch batch)
        {
            Iteration++;
            Position = batch.Next;
            foreach (var failure in batch.Failures)
                if (Failures.Count < MaxRecordedFailures) Failures.TryAdd(failure.Key, new ItemFailure(failure.Key, failure.Source, failure.Reason));
        }

        public void Saved(string path) => (SavedIteration, Checkpoint) = (Iteration, path);
    }
}

/// <summary>The run's commit record: how far it went, its last checkpoint and final values, the evaluations it submitted.</summary>
internal sealed record TrainedRun(long Iterations, long Images, string LastCheckpoint, IReadOnlyDictionary<string, double>? Final,
    IReadOnlyList<string> Evaluations);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(TrainedRun))]
internal sealed partial class WorkerJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
