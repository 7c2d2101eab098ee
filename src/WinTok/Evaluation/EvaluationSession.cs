using System.Runtime.InteropServices;
using WinTok.Evaluation.ZeroShot;
using WinTok.Inference;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

/// <summary>What an evaluation measures and with which networks (every file already checked by the submitter).</summary>
/// <param name="Weights">The metric networks' files; a network without files is not built and its metric is absent.</param>
/// <param name="RealFeatures">Whether to run the Inception on the real images (false when their statistics are cached).</param>
/// <param name="CountUsage">Whether to count codebook usage.</param>
/// <param name="ZeroShot">Whether to classify zero-shot; needs labels.</param>
/// <param name="TextTower">WinTok zero-shot: the HF SigLIP2 folder. UniTok uses the text tower of <paramref name="Checkpoint"/>.</param>
/// <param name="Checkpoint">The local checkpoint file (UniTok's text tower is read from it).</param>
/// <param name="ClassifierCache">Folder of cached zero-shot classifiers (keyed by text tower and protocol).</param>
/// <param name="Model">
/// How the model was read from <paramref name="Checkpoint"/>: UniTok's text tower is configured by the same args and
/// encoder shape as the model it belongs to.
/// </param>
/// <param name="CheckpointSha256">The checkpoint's content hash when known (the text tower's identity), else computed.</param>
public sealed record EvaluationSettings(
    EvaluationWeightFiles Weights,
    bool RealFeatures,
    bool CountUsage,
    bool ZeroShot,
    string? TextTower,
    string Checkpoint,
    string ClassifierCache,
    ModelLoadOptions? Model = null,
    string? CheckpointSha256 = null);

/// <summary>One batch's per-image values, copied to the host, in batch order.</summary>
/// <param name="Lpips">Per network name (<c>alex</c>, <c>vgg</c>, ...).</param>
/// <param name="Top1">Zero-shot: the best class per image, or null.</param>
/// <param name="Top5Hit">Zero-shot: whether the label is among the five best, or null.</param>
public sealed record BatchValues(double[] Psnr, double[] Ssim, IReadOnlyDictionary<string, double[]> Lpips, int[]? Top1, bool[]? Top5Hit);

/// <summary>A partition's outcome: its sufficient statistics, its zero-shot counts and the pairs kept for the grid.</summary>
/// <param name="Grid">Original and reconstruction levels (3, H, W) each, uint8, for the first images, when asked.</param>
public sealed record PartitionOutcome(PartialMetrics Metrics, ZeroShotCounts? ZeroShot, IReadOnlyList<(byte[] Original, byte[] Reconstruction)> Grid);

/// <summary>
/// The metric networks, zero-shot classifier and settings of one evaluation, attached to the model the model thread
/// serves (<see cref="ModelThread.Attachment{T}"/>): loaded once per process and checkpoint, reused by every partition.
/// Everything here runs on the model thread.
/// </summary>
public sealed class EvaluationSession : IDisposable
{
    private readonly ITokenizerModel model;
    private readonly EvaluationNetworks networks;
    private readonly ZeroShotClassifier? classifier;
    private readonly EvaluationSettings settings;

    private EvaluationSession(ITokenizerModel model, EvaluationNetworks networks, ZeroShotClassifier? classifier, EvaluationSettings settings) =>
        (this.model, this.networks, this.classifier, this.settings) = (model, networks, classifier, settings);

    public static EvaluationSession Create(ITokenizerModel model, Device device, EvaluationSettings settings)
    {
        var networks = EvaluationNetworks.Load(settings.Weights, device);
        try
        {
            return new EvaluationSession(model, networks, settings.ZeroShot ? BuildClassifier(model, device, settings) : null, settings);
        }
        catch
        {
            networks.Dispose();
            throw;
        }
    }

    /// <summary>Starts a partition's accumulation; <paramref name="gridImages"/> pairs are kept for the reconstruction grid.</summary>
    public PartitionEvaluation Begin(int gridImages)
    {
        var description = model.Description;
        var options = new MetricAccumulatorOptions
        {
            RealImageFeatures = settings.RealFeatures,
            Codebooks = settings.CountUsage ? new CodebookShape(description.NumCodebooks, description.CodebookSize) : null,
        };
        return new PartitionEvaluation(model, new MetricAccumulator(networks, options), classifier, networks.Device, gridImages);
    }

    private static ZeroShotClassifier BuildClassifier(ITokenizerModel model, Device device, EvaluationSettings settings)
    {
        var unitok = model.Description.Kind == ModelKinds.UniTok;
        using ITextTower tower = unitok
            ? UniTokCheckpoint.LoadTextTower(settings.Checkpoint, TokenizerCheckpoints.ViTaminShapeFrom(settings.Model ?? ModelLoadOptions.Default),
                sha256: settings.CheckpointSha256)
            : SiglipTextTower.Load(settings.TextTower ?? throw new ArgumentException("zero-shot of a WinTok model needs the SigLIP2 text tower folder"));
        if (tower.Width != model.Description.EmbeddingWidth)
            throw new ArgumentException($"the text tower embeds into {tower.Width} dimensions, the model's images into {model.Description.EmbeddingWidth}");
        tower.PrepareForInference(device);
        var protocol = unitok ? ZeroShotProtocol.UniTokImageNet : ZeroShotProtocol.WinTokImageNet;
        return ZeroShotClassifier.BuildOrLoad(tower, protocol, settings.ClassifierCache, device);
    }

    public void Dispose()
    {
        networks.Dispose();
        classifier?.Dispose();
    }
}

/// <summary>One partition's accumulation on the model thread: feed it batches of levels, then take its outcome.</summary>
public sealed class PartitionEvaluation : IDisposable
{
    private readonly ITokenizerModel model;
    private readonly MetricAccumulator accumulator;
    private readonly ZeroShotClassifier? classifier;
    private readonly Device device;
    private readonly int gridImages;
    private readonly List<(byte[] Original, byte[] Reconstruction)> grid = [];
    private ZeroShotCounts? zeroShot;

    internal PartitionEvaluation(ITokenizerModel model, MetricAccumulator accumulator, ZeroShotClassifier? classifier, Device device, int gridImages)
    {
        (this.model, this.accumulator, this.classifier, this.device, this.gridImages) = (model, accumulator, classifier, device, gridImages);
        zeroShot = classifier is null ? null : ZeroShotCounts.Zero;
    }

    /// <summary>
    /// Reconstructs <paramref name="count"/> images given as 8-bit levels (3, H, W each, preprocessed as the reference
    /// does) and measures them; <paramref name="labels"/> are the class indices for zero-shot (ignored without it).
    /// </summary>
    public BatchValues Add(ReadOnlySpan<byte> levels, int count, ReadOnlySpan<int> labels)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var size = model.Description.ImageSize;
        var expected = count * 3 * size * size;
        if (count < 1 || levels.Length < expected)
            throw new ArgumentException($"Expected {count} images of 3x{size}x{size} levels ({expected} bytes), got {levels.Length} bytes");
        // The reference's ToTensor + Normalize(0.5, 0.5) in float32: the same values bit for bit.
        var images = ((tensor(levels[..expected].ToArray(), [count, 3, size, size]).to(device).to(float32) / 255.0 - 0.5) / 0.5);
        var reconstruction = model.Reconstruct(images, withEmbedding: classifier is not null);
        using var measured = accumulator.AddBatch(images, reconstruction.Images);
        if (accumulator.CountsUsage) accumulator.AddIndices(reconstruction.Indices);

        int[]? top1 = null;
        bool[]? top5 = null;
        if (classifier is not null)
        {
            var targets = tensor(labels[..count].ToArray().Select(l => (long)l).ToArray()).to(device);
            var best = classifier.TopK(reconstruction.Embedding!, 5);
            zeroShot = zeroShot!.Add(ZeroShotCounts.Count(best, targets));
            top1 = best.select(1, 0).cpu().to(ScalarType.Int32).data<int>().ToArray();
            top5 = best.eq(targets.unsqueeze(1)).any(1).cpu().data<bool>().ToArray();
        }
        KeepForGrid(images, reconstruction.Images, count);
        return new BatchValues(
            measured.Psnr.cpu().data<double>().ToArray(), measured.Ssim.cpu().data<double>().ToArray(),
            measured.Lpips.ToDictionary(pair => pair.Key.ToString().ToLowerInvariant(), pair => pair.Value.cpu().data<double>().ToArray()),
            top1, top5);
    }

    /// <summary>The partition's statistics and counts (one copy from the device).</summary>
    public PartitionOutcome Finish() => new(accumulator.ToPartial(), zeroShot, grid);

    /// <summary>The first images and their clamped reconstructions as uint8 levels, as a person would look at them.</summary>
    private void KeepForGrid(Tensor images, Tensor reconstructions, int count)
    {
        for (var i = 0; i < count && grid.Count < gridImages; i++)
        {
            grid.Add((Levels(images[i]), Levels(reconstructions[i].clamp(-1, 1))));
        }
    }

    private static byte[] Levels(Tensor image) => // (3, H, W) in [-1, 1] to rounded uint8 levels
        ((image.to(float32) + 1) * 127.5).round().clamp(0, 255).to(ScalarType.Byte).cpu().contiguous().bytes.ToArray();

    public void Dispose() => accumulator.Dispose();
}
