using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// The metric networks of WinTok's evaluation (examples/eval_tokenizer/eval_metrics_ddp.py @ eb0452e): the FID
// InceptionV3 and lpips.LPIPS(net='alex') / LPIPS(net='vgg'). The reference downloads their weights at run time; here
// the operator names the files, and nothing is downloaded.

/// <summary>
/// Where the evaluation networks' weight files are. A network whose files are not given is not built (its metric is
/// then absent from the results); an LPIPS network needs both its backbone and its head file.
/// </summary>
public sealed record EvaluationWeightFiles
{
    /// <summary>pytorch-fid's <c>pt_inception-2015-12-05-6726825d.pth</c> (rFID).</summary>
    public string? Inception { get; init; }

    /// <summary>torchvision's <c>alexnet-owt-7be5be79.pth</c> (LPIPS-alex backbone).</summary>
    public string? LpipsAlexBackbone { get; init; }

    /// <summary>The lpips package's <c>weights/v0.1/alex.pth</c> (LPIPS-alex heads).</summary>
    public string? LpipsAlexHeads { get; init; }

    /// <summary>torchvision's <c>vgg16-397923af.pth</c> (LPIPS-vgg backbone).</summary>
    public string? LpipsVggBackbone { get; init; }

    /// <summary>The lpips package's <c>weights/v0.1/vgg.pth</c> (LPIPS-vgg heads).</summary>
    public string? LpipsVggHeads { get; init; }
}

/// <summary>The loaded metric networks, in eval mode on one device. Owns them.</summary>
public sealed class EvaluationNetworks : IDisposable
{
    private readonly Dictionary<LpipsVariant, Lpips> lpips;

    /// <summary>Takes ownership of the networks and moves them to <paramref name="device"/>.</summary>
    public EvaluationNetworks(FidInception? inception, IEnumerable<Lpips> lpips, Device device)
    {
        ArgumentNullException.ThrowIfNull(lpips);
        ArgumentNullException.ThrowIfNull(device);
        Device = device;
        Inception = inception;
        this.lpips = [];
        foreach (var network in lpips)
        {
            if (!this.lpips.TryAdd(network.Variant, network))
            {
                throw new ArgumentException($"Two LPIPS networks of variant {network.Variant}", nameof(lpips));
            }
        }
        // Loaded on the CPU (strict checks there), then moved; see Lpips' remark on why this order.
        inception?.to(device);
        foreach (var network in this.lpips.Values)
        {
            network.to(device);
        }
    }

    /// <summary>The device the networks run on; batches must be there.</summary>
    public Device Device { get; }

    /// <summary>The FID Inception, or null when no file was given.</summary>
    public FidInception? Inception { get; }

    /// <summary>The LPIPS networks by variant (the evaluation uses <see cref="LpipsVariant.Alex"/> and <see cref="LpipsVariant.Vgg"/>).</summary>
    public IReadOnlyDictionary<LpipsVariant, Lpips> Lpips => lpips;

    /// <summary>Loads every network whose files are given, strictly (each failure names its file and tensors), then moves them to <paramref name="device"/>.</summary>
    /// <exception cref="ArgumentException">An LPIPS backbone is given without its head file, or the other way round.</exception>
    /// <exception cref="WeightFileMismatchException">A file's tensors do not fit its network.</exception>
    public static EvaluationNetworks Load(EvaluationWeightFiles files, Device device)
    {
        ArgumentNullException.ThrowIfNull(files);
        var alex = Pair(files.LpipsAlexBackbone, files.LpipsAlexHeads, "LPIPS-alex");
        var vgg = Pair(files.LpipsVggBackbone, files.LpipsVggHeads, "LPIPS-vgg");
        var loaded = new List<IDisposable>();
        try
        {
            var inception = files.Inception is null ? null : FidInception.Load(files.Inception);
            if (inception is not null) loaded.Add(inception);
            var networks = new List<Lpips>();
            foreach (var (variant, paths) in new[] { (LpipsVariant.Alex, alex), (LpipsVariant.Vgg, vgg) })
            {
                if (paths is { } pair)
                {
                    var network = Evaluation.Lpips.LoadPackage(variant, pair.Backbone, pair.Heads);
                    loaded.Add(network);
                    networks.Add(network);
                }
            }
            return new EvaluationNetworks(inception, networks, device);
        }
        catch
        {
            loaded.ForEach(network => network.Dispose());
            throw;
        }
    }

    public void Dispose()
    {
        Inception?.Dispose();
        foreach (var network in lpips.Values)
        {
            network.Dispose();
        }
        lpips.Clear();
    }

    private static (string Backbone, string Heads)? Pair(string? backbone, string? heads, string network) => (backbone, heads) switch
    {
        (null, null) => null,
        ({ } b, { } h) => (b, h),
        _ => throw new ArgumentException($"{network} needs both its torchvision backbone file and its lpips head file; only the {(backbone is null ? "head" : "backbone")} file is given"),
    };
}
