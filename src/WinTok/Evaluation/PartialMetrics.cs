using System.Text;

namespace WinTok.Evaluation;

// A partition's metric statistics on the host, and the final numbers WinTok's evaluation prints
// (examples/eval_tokenizer/eval_metrics_ddp.py @ eb0452e): LPIPS = Σ per-image values / images; PSNR and SSIM = mean of
// the per-batch means (the reference's averaging, which depends on the batching; the per-image means are given too);
// FID from the merged feature statistics; codebook usage from the merged counts.

/// <summary>Sums of per-image PSNR and SSIM, and of per-batch means of each (the reference averages batch means).</summary>
public sealed record QualitySums(double Psnr, double Ssim, double PsnrBatchMeans, double SsimBatchMeans)
{
    public static QualitySums Zero { get; } = new(0, 0, 0, 0);

    public QualitySums Plus(QualitySums other) =>
        new(Psnr + other.Psnr, Ssim + other.Ssim, PsnrBatchMeans + other.PsnrBatchMeans, SsimBatchMeans + other.SsimBatchMeans);
}

/// <summary>The evaluation's final numbers; a metric whose network or data was absent is null or missing.</summary>
/// <param name="Images">Images evaluated.</param>
/// <param name="Psnr">Mean of the per-batch mean PSNR, as the reference reports it (NaN without images).</param>
/// <param name="Ssim">Mean of the per-batch mean SSIM, as the reference reports it.</param>
/// <param name="PsnrPerImage">Mean PSNR over images (equals <paramref name="Psnr"/> when all batches are full).</param>
/// <param name="SsimPerImage">Mean SSIM over images.</param>
/// <param name="Lpips">Σ LPIPS / images, per network.</param>
/// <param name="Fid">Fréchet distance between real and reconstructed Inception features, if both are known.</param>
/// <param name="Codebook">Usage over all global ids, if counted.</param>
/// <param name="PerCodebook">Usage within each codebook, if counted.</param>
public sealed record EvaluationSummary(
    long Images,
    double Psnr,
    double Ssim,
    double PsnrPerImage,
    double SsimPerImage,
    IReadOnlyDictionary<LpipsVariant, double> Lpips,
    double? Fid,
    UsageSummary? Codebook,
    IReadOnlyList<UsageSummary>? PerCodebook);

/// <summary>
/// One partition's (or several merged partitions') sufficient statistics for every metric, on the host. Merging is
/// exact for counts and a float64 addition for sums; <see cref="WriteTo"/> / <see cref="ReadFrom"/> keep every bit.
/// </summary>
public sealed class PartialMetrics
{
    private const uint Magic = 0x4D505457; // "WTPM" little-endian
    private const int FormatVersion = 1;

    private readonly Dictionary<LpipsVariant, double> lpipsSums;

    /// <summary>Nothing measured yet; merging a partition into it adopts that partition's metrics.</summary>
    public PartialMetrics()
        : this(0, 0, QualitySums.Zero, new Dictionary<LpipsVariant, double>(), null, null, null)
    {
        IsBlank = true;
    }

    internal PartialMetrics(
        long images, long batches, QualitySums quality, IReadOnlyDictionary<LpipsVariant, double> lpipsSums,
        FeatureStatistics? realFeatures, FeatureStatistics? reconstructionFeatures, CodebookUsage? codebooks)
    {
        Images = images;
        Batches = batches;
        Quality = quality;
        this.lpipsSums = new Dictionary<LpipsVariant, double>(lpipsSums);
        RealFeatures = realFeatures;
        ReconstructionFeatures = reconstructionFeatures;
        Codebooks = codebooks;
    }

    /// <summary>Images measured.</summary>
    public long Images { get; private set; }

    /// <summary>Batches measured (the divisor of the reference's PSNR/SSIM averages).</summary>
    public long Batches { get; private set; }

    /// <summary>PSNR and SSIM sums.</summary>
    public QualitySums Quality { get; private set; }

    /// <summary>Σ per-image LPIPS per network.</summary>
    public IReadOnlyDictionary<LpipsVariant, double> LpipsSums => lpipsSums;

    /// <summary>Inception statistics of the real images, unless they were not computed (cached elsewhere).</summary>
    public FeatureStatistics? RealFeatures { get; private set; }

    /// <summary>Inception statistics of the reconstructions, if an Inception was loaded.</summary>
    public FeatureStatistics? ReconstructionFeatures { get; private set; }

    /// <summary>Codebook counts, if counted.</summary>
    public CodebookUsage? Codebooks { get; private set; }

    private bool IsBlank { get; set; }

    /// <summary>
    /// Adds another partition. Both must have measured the same metrics (LPIPS networks, feature statistics, codebook
    /// shape), unless this one is blank (<see cref="PartialMetrics()"/>), in which case it takes the other's.
    /// </summary>
    public void Merge(PartialMetrics other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.IsBlank)
        {
            return;
        }
        if (IsBlank)
        {
            IsBlank = false;
            RealFeatures = other.RealFeatures is null ? null : new FeatureStatistics(other.RealFeatures.Dimension);
            ReconstructionFeatures = other.ReconstructionFeatures is null ? null : new FeatureStatistics(other.ReconstructionFeatures.Dimension);
            Codebooks = other.Codebooks is null ? null : new CodebookUsage(other.Codebooks.Shape);
            foreach (var variant in other.lpipsSums.Keys)
            {
                lpipsSums[variant] = 0;
            }
        }
        string? mismatch = Layout() == other.Layout() ? null : $"this has {Layout()}, the other {other.Layout()}";
        if (mismatch is not null)
        {
            throw new ArgumentException($"Cannot merge partitions that measured different metrics: {mismatch}", nameof(other));
        }
        Images += other.Images;
        Batches += other.Batches;
        Quality = Quality.Plus(other.Quality);
        foreach (var (variant, sum) in other.lpipsSums)
        {
            lpipsSums[variant] += sum;
        }
        if (other.RealFeatures is not null) RealFeatures!.Merge(other.RealFeatures);
        if (other.ReconstructionFeatures is not null) ReconstructionFeatures!.Merge(other.ReconstructionFeatures);
        if (other.Codebooks is not null) Codebooks!.Merge(other.Codebooks);
    }

    /// <summary>
    /// The final numbers. The Fréchet distance compares the reconstructions' statistics with
    /// <paramref name="realStatistics"/> (cached real-image statistics) or, when that is null, with the real-image
    /// statistics accumulated here.
    /// </summary>
    /// <param name="device">Where the Fréchet distance's float64 eigen decompositions run (CPU by default).</param>
    public EvaluationSummary Summarize(FeatureStatistics? realStatistics = null, int topK = 50, TorchSharp.torch.Device? device = null)
    {
        var real = realStatistics ?? RealFeatures;
        double? fid = real is not null && ReconstructionFeatures is not null ? FrechetDistance.Between(real, ReconstructionFeatures, device) : null;
        return new EvaluationSummary(
            Images,
            Quality.PsnrBatchMeans / Batches,
            Quality.SsimBatchMeans / Batches,
            Quality.Psnr / Images,
            Quality.Ssim / Images,
            lpipsSums.ToDictionary(pair => pair.Key, pair => pair.Value / Images),
            fid,
            Codebooks?.Summarize(topK),
            Codebooks is null ? null : Enumerable.Range(0, Codebooks.Shape.NumCodebooks).Select(i => Codebooks.SummarizeCodebook(i, topK)).ToList());
    }

    /// <summary>Writes every count and sum exactly ("WTPM", version, then the sections, little-endian).</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Magic);
            writer.Write(FormatVersion);
            writer.Write(IsBlank);
            writer.Write(Images);
            writer.Write(Batches);
            writer.Write(Quality.Psnr);
            writer.Write(Quality.Ssim);
            writer.Write(Quality.PsnrBatchMeans);
            writer.Write(Quality.SsimBatchMeans);
            writer.Write(lpipsSums.Count);
            foreach (var (variant, sum) in lpipsSums.OrderBy(pair => pair.Key))
            {
                writer.Write((int)variant);
                writer.Write(sum);
            }
            writer.Write(RealFeatures is not null);
            writer.Write(ReconstructionFeatures is not null);
            writer.Write(Codebooks is not null);
        }
        RealFeatures?.WriteTo(stream);
        ReconstructionFeatures?.WriteTo(stream);
        Codebooks?.WriteTo(stream);
    }

    /// <summary>Reads a partition written by <see cref="WriteTo"/>.</summary>
    /// <exception cref="InvalidDataException">The data is not a partition's metrics, or ends early.</exception>
    public static PartialMetrics ReadFrom(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        try
        {
            using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            if (reader.ReadUInt32() != Magic)
            {
                throw new InvalidDataException("Not WinTok partial metrics: the data does not start with 'WTPM'");
            }
            int version = reader.ReadInt32();
            if (version != FormatVersion)
            {
                throw new InvalidDataException($"Partial metrics of format version {version}; this build reads version {FormatVersion}");
            }
            bool blank = reader.ReadBoolean();
            long images = reader.ReadInt64();
            long batches = reader.ReadInt64();
            var quality = new QualitySums(reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble());
            int networks = reader.ReadInt32();
            if (networks < 0 || networks > Enum.GetValues<LpipsVariant>().Length)
            {
                throw new InvalidDataException($"Partial metrics claim {networks} LPIPS networks");
            }
            var lpips = new Dictionary<LpipsVariant, double>();
            for (int i = 0; i < networks; i++)
            {
                var variant = (LpipsVariant)reader.ReadInt32();
                if (!Enum.IsDefined(variant) || !lpips.TryAdd(variant, reader.ReadDouble()))
                {
                    throw new InvalidDataException($"Partial metrics name LPIPS network {(int)variant} unknown or twice");
                }
            }
            bool hasReal = reader.ReadBoolean(), hasReconstructions = reader.ReadBoolean(), hasCodebooks = reader.ReadBoolean();
            var real = hasReal ? FeatureStatistics.ReadFrom(stream) : null;
            var reconstructions = hasReconstructions ? FeatureStatistics.ReadFrom(stream) : null;
            var codebooks = hasCodebooks ? CodebookUsage.ReadFrom(stream) : null;
            return new PartialMetrics(images, batches, quality, lpips, real, reconstructions, codebooks) { IsBlank = blank };
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("Partial metrics end early (truncated)", e);
        }
    }

    private string Layout() =>
        $"LPIPS [{string.Join(", ", lpipsSums.Keys.Order())}], real features {RealFeatures?.Dimension.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, " +
        $"reconstruction features {ReconstructionFeatures?.Dimension.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, codebooks {Codebooks?.Shape.ToString() ?? "none"}";
}
