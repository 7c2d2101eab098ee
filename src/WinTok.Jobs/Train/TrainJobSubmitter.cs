using System.Security.Cryptography;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Tokenize;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs.Train;

/// <summary>
/// Turns a training configuration into a job in the same two steps as the other kinds: <see cref="PlanAsync"/> checks
/// everything (the weight files, by content hash; the corpus, counted; the init checkpoint's architecture against the
/// configuration's; the evaluation's dataset and weights) and names every problem at once, writing nothing;
/// <see cref="SubmitAsync"/> records the job and its one partition (the whole run) and publishes one <see cref="TrainRun"/>.
/// </summary>
public sealed class TrainJobSubmitter(
    ResultsRepository results,
    IMessagePublisher<TrainRun> publisher,
    ICheckpointInspector inspector,
    IOptions<CheckpointCacheOptions> cache,
    IOptions<EvaluationOptions> evaluation,
    TimeProvider timeProvider,
    BlobServiceClient? blobService = null)
{
    /// <summary>The architecture arguments an init checkpoint must agree with (or supplies, when the configuration leaves them out).</summary>
    private static readonly string[] ArchitectureArgs =
    [
        "num_latent_tokens", "vocab_size", "vocab_width", "num_codebooks", "decoder_rec_depth", "decoder_rec_num_heads",
        "decoder_rec_hidden_size", "decoder_rec_intermediate_size",
    ];

    public async Task<PlannedJob<TrainJobSpec>> PlanAsync(TrainConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        var problems = new List<string>();
        var args = new Dictionary<string, object?>(config.Args);

        if (FileStores.IsBlobLocation(config.Output))
            problems.Add($"output {config.Output} is in blob storage; a run writes its checkpoints to a folder every worker shares (a local path or a mounted volume)");
        else if (RunFiles.HoldsRun(config.Output) is { } existing)
            problems.Add($"output {config.Output} already holds a run ({existing}); continue it with `wintok jobs retry`, or choose another output");

        var teacherConfig = await ReferenceAsync(Join(config.Teacher, "config.json"), "teacher", problems, cancellationToken);
        var teacherWeights = await ReferenceAsync(Join(config.Teacher, "model.safetensors"), "teacher", problems, cancellationToken);
        var lpips = config.Lpips is { } lpipsFile && (double)args["lp"]! > 0 ? await ReferenceAsync(lpipsFile, "lpips", problems, cancellationToken) : null;
        var dino = await ReferenceAsync(config.Dino, "dino", problems, cancellationToken);
        var init = config.Init is { } initFile ? await ReferenceAsync(initFile, "init", problems, cancellationToken) : null;

        var imageSize = 0;
        string? teacherJson = null;
        if (teacherConfig is { } teacherFile)
        {
            teacherJson = await File.ReadAllTextAsync(teacherFile.Local, cancellationToken);
            imageSize = ImageSize(teacherJson, teacherFile.Local, problems);
            if (args["img_size"] is long size && imageSize > 0 && size != imageSize)
                problems.Add($"img_size {size} differs from the teacher's image_size {imageSize} ({teacherFile.Local}); the encoder is the teacher's");
            args["img_size"] = (long)imageSize;
        }
        if (init is { } initReference && teacherJson is not null) CheckInit(config, initReference.Local, teacherJson, args, problems);

        var samples = await CountAsync(config, problems, cancellationToken);
        if (config.Evaluation is { } template) CheckEvaluation(template, problems);

        var perEpoch = samples is > 0 ? (samples.Value + config.LocalBatch - 1) / config.LocalBatch : 0;
        var maxIterations = perEpoch * (long)args["epoch"]!;
        var saveEvery = config.SaveEvery ?? (int)Math.Max(1, perEpoch / (long)args["eval_per_epoch"]!);
        if (problems.Count > 0)
            throw new ArgumentException($"the training job cannot start: {string.Join("; ", problems)}");

        var seed = config.Seed ?? RandomNumberGenerator.GetInt32(int.MaxValue);
        args["seed"] = (long)seed;
        var weights = new TrainWeights(teacherConfig!.Value.Reference, teacherWeights!.Value.Reference, lpips?.Reference, dino!.Value.Reference, init?.Reference);
        var spec = new TrainJobSpec(TrainConfig.ArgsToJson(args), config.TrainData, config.Output, weights, config.DinoHeads, samples!.Value,
            config.LocalBatch, perEpoch, maxIterations, saveEvery, config.LogEvery, config.EvaluateEvery, config.Evaluation, config.Precision, seed,
            config.Device, config.KeepCheckpoints, config.SaveSafetensors, config.TensorBoard, config.ShuffleBuffer, config.MaxPixels,
            config.FilesPerPartition, imageSize, (bool)args["use_aug"]! ? 0.64 : 0.9, timeProvider.GetUtcNow());
        // The whole run is one partition; its items are the images the run will train on, for progress displays.
        var images = (int)Math.Min(int.MaxValue, maxIterations * config.LocalBatch);
        return new PlannedJob<TrainJobSpec>(spec, [new NewPartition(0, "{}", images)]);
    }

    public async Task<SubmittedJob> SubmitAsync(PlannedJob<TrainJobSpec> job, CancellationToken cancellationToken)
    {
        var jobId = Guid.CreateVersion7(timeProvider.GetUtcNow());
        await results.CreateJobAsync(new NewJob(jobId, TrainJobSpec.JobKind, job.Spec.ToJson()), cancellationToken);
        await results.AddPartitionsAsync(jobId, job.Partitions, cancellationToken);
        await publisher.PublishAsync(new TrainRun(jobId, 0, 1), cancellationToken);
        return new SubmittedJob(jobId, job.Partitions.Count);
    }

    private async Task<(CheckpointReference Reference, string Local)?> ReferenceAsync(string location, string key, List<string> problems,
        CancellationToken cancellationToken)
    {
        try
        {
            return await CheckpointFiles.ReferenceAsync(location, blobService, cache.Value.CacheFolder, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or ArgumentException
            || e is Azure.RequestFailedException { Status: 404 })
        {
            problems.Add($"{key}: {location} cannot be read ({e.Message})");
            return null;
        }
    }

    /// <summary>The teacher's input side from its HF config (a vision config, or a whole SigLIP config's vision_config).</summary>
    private static int ImageSize(string json, string path, List<string> problems)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.TryGetProperty("vision_config", out var vision)) root = vision;
            if (root.TryGetProperty("image_size", out var size) && size.TryGetInt32(out var value) && value > 0) return value;
            problems.Add($"teacher: {path} has no image_size (is it an HF SigLIP config.json?)");
        }
        catch (JsonException e)
        {
            problems.Add($"teacher: {path} is not JSON: {e.Message}");
        }
        return 0;
    }

    /// <summary>An init checkpoint must be a WinTok of the configured architecture; unset architecture keys are taken from it.</summary>
    private void CheckInit(TrainConfig config, string local, string teacherJson, Dictionary<string, object?> args, List<string> problems)
    {
        CheckpointFacts facts;
        try
        {
            facts = inspector.Inspect(local, new ModelChoice(EncoderConfig: teacherJson));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The model side's readers say what is wrong with the file (format, args, kind); the control plane only reports it.
            problems.Add($"init: {config.Init} is not a usable checkpoint: {e.Message}");
            return;
        }
        if (facts.Kind != "wintok")
        {
            problems.Add($"init: {config.Init} is a {facts.Kind} checkpoint; the trainer trains WinTok");
            return;
        }
        using var document = JsonDocument.Parse(facts.ArgsJson);
        foreach (var key in ArchitectureArgs)
        {
            if (!document.RootElement.TryGetProperty(key, out var value) || !value.TryGetInt64(out var theirs)) continue;
            if (!config.Given.Contains(key)) args[key] = theirs;
            else if (args[key] is long ours && ours != theirs)
                problems.Add($"{key} {ours} differs from the init checkpoint's {theirs}; leave it out to take the checkpoint's");
        }
    }

    /// <summary>Plans every corpus (to find it non-empty and count its images); tars are not counted: they need train_num_samples.</summary>
    private async Task<long?> CountAsync(TrainConfig config, List<string> problems, CancellationToken cancellationToken)
    {
        long counted = 0;
        var tars = false;
        foreach (var location in config.TrainData)
        {
            try
            {
                var partitions = await TrainingData.PlanAsync([location], config.FilesPerPartition, blobService, cancellationToken);
                if (partitions.Count == 0) problems.Add($"train_data {location} holds no images");
                tars |= partitions.Any(p => p.Kind == CorpusKind.WebDataset);
                counted += partitions.Sum(p => (long)(p.Files?.Count ?? 0));
            }
            catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or ArgumentException || e is Azure.RequestFailedException { Status: 404 })
            {
                problems.Add($"train_data {location} cannot be listed ({e.Message})");
            }
        }
        if (config.TrainNumSamples is { } given) return given;
        if (tars)
        {
            problems.Add("train_num_samples is required for WebDataset corpora (tars are not counted before training), as in the reference's dataset list");
            return null;
        }
        return counted;
    }

    private void CheckEvaluation(EvaluationTemplate template, List<string> problems)
    {
        if (!FileStores.IsBlobLocation(template.Dataset) && !Directory.Exists(template.Dataset))
            problems.Add($"evaluation.dataset {template.Dataset} does not exist");
        try
        {
            EvaluationWeights.Check(template.Metrics, "wintok", template.Weights, template.TextTower, evaluation.Value.VerifyWeightHashes);
        }
        catch (ArgumentException e)
        {
            problems.Add($"evaluation: {e.Message}");
        }
    }

    private static string Join(string folder, string name) =>
        FileStores.IsBlobLocation(folder) ? folder.TrimEnd('/') + "/" + name : Path.Combine(folder, name);
}
