using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// One evaluation partition's metrics, accumulated batch by batch on the GPU next to the tokenizer, in the reference's
// order of operations (examples/eval_tokenizer/eval_metrics_ddp.py @ eb0452e, main): rec = clamp(recon, -1, 1);
// LPIPS alex/vgg per image; Inception features of the images and of rec; PSNR/SSIM per image; codebook ids counted
// separately (img_to_idx). Nothing leaves the device until ToPartial.

/// <summary>What a <see cref="MetricAccumulator"/> collects besides PSNR, SSIM and the LPIPS of the loaded networks.</summary>
public sealed record MetricAccumulatorOptions
{
    /// <summary>
    /// Whether to run the Inception on the real images too. Turn off when the real-image statistics of the dataset are
    /// cached (they do not depend on the model); the Fréchet distance then needs them passed to
    /// <see cref="PartialMetrics.Summarize"/>.
    /// </summary>
    /// <value>True.</value>
    public bool RealImageFeatures { get; init; } = true;

    /// <summary>The quantizer's id shape, when codebook usage is counted (<see cref="MetricAccumulator.AddIndices"/>).</summary>
    /// <value>Null: no usage counting.</value>
    public CodebookShape? Codebooks { get; init; }
}

/// <summary>Per-image metrics of one batch, float64 tensors (B) on the batch's device. Owns them.</summary>
public sealed class ImageMetrics(Tensor psnr, Tensor ssim, IReadOnlyDictionary<LpipsVariant, Tensor> lpips) : IDisposable
{
    /// <summary>PSNR in dB per image (+∞ for an exact reconstruction).</summary>
    public Tensor Psnr { get; } = psnr;

    /// <summary>Mean SSIM per image.</summary>
    public Tensor Ssim { get; } = ssim;

    /// <summary>LPIPS distance per image, per network.</summary>
    public IReadOnlyDictionary<LpipsVariant, Tensor> Lpips { get; } = lpips;

    public void Dispose()
    {
        Psnr.Dispose();
        Ssim.Dispose();
        foreach (var values in Lpips.Values)
        {
            values.Dispose();
        }
    }
}

/// <summary>
/// Accumulates one partition's sufficient statistics on the networks' device: sums of per-image PSNR, SSIM and
/// LPIPS, per-batch means (the reference's averaging), Inception feature statistics and codebook counts.
/// <see cref="ToPartial"/> copies them to a serialisable <see cref="PartialMetrics"/>.
/// </summary>
public sealed class MetricAccumulator : IDisposable
{
    private readonly EvaluationNetworks networks;
    private readonly Tensor sums; // float64: psnr, ssim, psnr batch means, ssim batch means, then one LPIPS sum per network
    private readonly LpipsVariant[] variants;
    private readonly FeatureAccumulator? realFeatures;
    private readonly FeatureAccumulator? reconstructionFeatures;
    private readonly CodebookCounter? codebooks;
    private long images;
    private long batches;

    public MetricAccumulator(EvaluationNetworks networks, MetricAccumulatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(networks);
        options ??= new MetricAccumulatorOptions();
        this.networks = networks;
        variants = [.. networks.Lpips.Keys.Order()];
        sums = zeros([4 + variants.Length], float64, networks.Device).DetachFromDisposeScope();
        if (networks.Inception is not null)
        {
            realFeatures = options.RealImageFeatures ? new FeatureAccumulator(FidInception.FeatureDimension, networks.Device) : null;
            reconstructionFeatures = new FeatureAccumulator(FidInception.FeatureDimension, networks.Device);
        }
        codebooks = options.Codebooks is { } shape ? new CodebookCounter(shape, networks.Device) : null;
    }

    /// <summary>
    /// Measures and accumulates a batch: <paramref name="images"/> and <paramref name="reconstructions"/> (B, 3, H, W) in
    /// [-1, 1] on the networks' device; the reconstructions are clamped to [-1, 1] first, as the reference does.
    /// </summary>
    /// <returns>The batch's per-image values; dispose them (or let a dispose scope do it).</returns>
    public ImageMetrics AddBatch(Tensor images, Tensor reconstructions)
    {
        if (images.dim() != 4 || images.shape[1] != 3 || !images.shape.SequenceEqual(reconstructions.shape))
        {
            throw new ArgumentException(
                $"Images and reconstructions must both be (B, 3, H, W) of one shape, got [{string.Join(", ", images.shape)}] and [{string.Join(", ", reconstructions.shape)}]");
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rec = reconstructions.clamp(-1, 1);
        var lpips = variants.ToDictionary(variant => variant, variant => networks.Lpips[variant].call(images, rec).to(float64));
        if (networks.Inception is { } inception)
        {
            realFeatures?.Add(inception.call(images));
            reconstructionFeatures!.Add(inception.call(rec));
        }
        var psnr = ImageQuality.Psnr(images, rec);
        var ssim = ImageQuality.Ssim(images, rec);
        var batch = stack([psnr.sum(), ssim.sum(), psnr.mean(), ssim.mean(), .. variants.Select(variant => lpips[variant].sum())]);
        sums.add_(batch);
        this.images += images.shape[0];
        batches++;
        return new ImageMetrics(psnr.MoveToOuterDisposeScope(), ssim.MoveToOuterDisposeScope(),
            lpips.ToDictionary(pair => pair.Key, pair => pair.Value.MoveToOuterDisposeScope()));
    }

    /// <summary>Whether <see cref="AddIndices"/> counts (the accumulator was made with a codebook shape).</summary>
    public bool CountsUsage => codebooks is not null;

    /// <summary>Counts a batch's token ids (B, K, L), as the reference's --vocab_stats does with <c>img_to_idx</c>.</summary>
    /// <exception cref="InvalidOperationException">The accumulator was made without <see cref="MetricAccumulatorOptions.Codebooks"/>.</exception>
    public void AddIndices(Tensor indices)
    {
        if (codebooks is null)
        {
            throw new InvalidOperationException($"This accumulator does not count codebook usage; set {nameof(MetricAccumulatorOptions)}.{nameof(MetricAccumulatorOptions.Codebooks)}");
        }
        codebooks.Add(indices);
    }

    /// <summary>The partition's statistics so far, on the host (one copy from the device).</summary>
    public PartialMetrics ToPartial()
    {
        using var scope = NewDisposeScope();
        var values = sums.cpu().data<double>().ToArray();
        return new PartialMetrics(
            images, batches,
            new QualitySums(values[0], values[1], values[2], values[3]),
            variants.Select((variant, i) => (variant, values[4 + i])).ToDictionary(pair => pair.variant, pair => pair.Item2),
            realFeatures?.ToStatistics(), reconstructionFeatures?.ToStatistics(), codebooks?.ToUsage());
    }

    public void Dispose()
    {
        sums.Dispose();
        realFeatures?.Dispose();
        reconstructionFeatures?.Dispose();
        codebooks?.Dispose();
    }
}
