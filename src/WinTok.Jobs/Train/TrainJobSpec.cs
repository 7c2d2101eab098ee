using System.Text.Json;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;

namespace WinTok.Jobs.Train;

/// <summary>
/// The weight files a run reads, fixed at submission by content hash like a tokenize job's checkpoint: the teacher's
/// HF folder (its config and weights), the training LPIPS, the DINOv2 backbone and the checkpoint to start from.
/// </summary>
public sealed record TrainWeights(
    CheckpointReference TeacherConfig,
    CheckpointReference TeacherWeights,
    CheckpointReference? Lpips,
    CheckpointReference Dino,
    CheckpointReference? Init);

/// <summary>
/// What a training job was asked to do, fixed at submission: the validated configuration (the reference's arguments
/// as checkpoints carry them, in <paramref name="ArgsJson"/>), the weight files, the data and the schedule's lengths.
/// One partition is the whole run; its worker resumes from the newest checkpoint in <paramref name="Output"/>.
/// </summary>
/// <param name="ArgsJson">Every reference argument (utils/config.py names), as the run's checkpoints record them.</param>
/// <param name="TrainData">Corpus locations, read in this order of partitions.</param>
/// <param name="Output">The run's folder: checkpoints, the data plan, TensorBoard events, evaluations.</param>
/// <param name="TrainNumSamples">Images per epoch (counted, or <c>train_num_samples</c> for tars).</param>
/// <param name="IterationsPerEpoch">The reference's <c>num_batches</c>: ceil(samples / local_bs).</param>
/// <param name="MaxIterations">Epochs times iterations per epoch: the run ends after this many.</param>
/// <param name="SaveEvery">A checkpoint every this many iterations (and one at the end, <c>ckpt-last.pth</c>).</param>
/// <param name="LogEvery">Losses and learning rates to the results database (and TensorBoard) every this many iterations.</param>
/// <param name="EvaluateEvery">An evaluation job for every checkpoint at a multiple of this (and the last), when <paramref name="Evaluation"/> is set.</param>
/// <param name="Seed">Seeds initialisation, data order, crops and the trainer's draws: a run is a function of it.</param>
/// <param name="ImageSize">The model's input side, from the teacher's config.</param>
/// <param name="CropScaleMin">RandomResizedCrop's smallest area fraction: 0.9, or 0.64 with <c>use_aug</c>.</param>
public sealed record TrainJobSpec(
    string ArgsJson,
    IReadOnlyList<string> TrainData,
    string Output,
    TrainWeights Weights,
    int? DinoHeads,
    long TrainNumSamples,
    int LocalBatch,
    long IterationsPerEpoch,
    long MaxIterations,
    int SaveEvery,
    int LogEvery,
    int? EvaluateEvery,
    EvaluationTemplate? Evaluation,
    string Precision,
    long Seed,
    string Device,
    int KeepCheckpoints,
    bool SaveSafetensors,
    bool TensorBoard,
    int ShuffleBuffer,
    long MaxPixels,
    int FilesPerPartition,
    int ImageSize,
    double CropScaleMin,
    DateTimeOffset CreatedUtc)
{
    public const string JobKind = "train";

    public string ToJson() => JsonSerializer.Serialize(this, JobsJsonContext.Default.TrainJobSpec);

    public static TrainJobSpec FromJson(string json) =>
        JsonSerializer.Deserialize(json, JobsJsonContext.Default.TrainJobSpec) ?? throw new JsonException("The train job spec is empty");

    /// <summary>Whether the checkpoint after iteration <paramref name="finished"/> (0-based) is due: every SaveEvery, and the last.</summary>
    public bool SavesAfter(long finished) => (finished + 1) % SaveEvery == 0 || finished + 1 == MaxIterations;

    /// <summary>Whether the checkpoint after iteration <paramref name="finished"/> gets an evaluation job.</summary>
    public bool EvaluatesAfter(long finished) => Evaluation is not null && SavesAfter(finished)
        && (finished + 1 == MaxIterations || (EvaluateEvery is { } every ? (finished + 1) % every == 0 : true));

    /// <summary>Whether iteration <paramref name="finished"/>'s losses are recorded.</summary>
    public bool LogsAfter(long finished) => (finished + 1) % LogEvery == 0 || finished + 1 == MaxIterations;
}
