using System.Security.Cryptography;

namespace WinTok.Jobs.Evaluate;

/// <summary>One weight file a metric needs: its name in the weights folder, where it comes from, its expected sha256.</summary>
/// <param name="Sha256Prefix">The start of its SHA-256 (the published names carry it, as torch.hub checks it), or its whole hash.</param>
public sealed record WeightFile(string Name, string Metric, string Source, string Sha256Prefix);

/// <summary>
/// The files the evaluation's metric networks read (docs/evaluation.md lists them the same way), and the check that runs
/// before any work: every file a requested metric needs exists and is the published file (its SHA-256), else the job is
/// refused naming the file, the metric and what was expected. Nothing is ever downloaded.
/// </summary>
public static class EvaluationWeights
{
    public static IReadOnlyList<WeightFile> Files { get; } =
    [
        new("pt_inception-2015-12-05-6726825d.pth", EvaluationMetrics.Rfid,
            "pytorch-fid's FID Inception weights (github.com/mseitzer/pytorch-fid release fid_weights_inception)", "6726825d"),
        new("alexnet-owt-7be5be79.pth", EvaluationMetrics.Lpips, "torchvision's AlexNet (download.pytorch.org/models)", "7be5be79"),
        new("vgg16-397923af.pth", EvaluationMetrics.Lpips, "torchvision's VGG16 (download.pytorch.org/models)", "397923af"),
        new("lpips/alex.pth", EvaluationMetrics.Lpips, "the lpips package's weights/v0.1/alex.pth (pip lpips 0.1.4)",
            "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
        new("lpips/vgg.pth", EvaluationMetrics.Lpips, "the lpips package's weights/v0.1/vgg.pth (pip lpips 0.1.4)",
            "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
    ];

    /// <summary>What an HF SigLIP2 folder must hold for WinTok's zero-shot (the text tower and its tokenizer).</summary>
    public static IReadOnlyList<string> TextTowerFiles { get; } = ["config.json", "model.safetensors", "tokenizer_config.json"];

    /// <summary>Refuses the request when a requested metric's file is missing or is not the published one.</summary>
    /// <exception cref="ArgumentException">With every problem found, each naming its file.</exception>
    public static void Check(IReadOnlyList<string> metrics, string modelKind, string? weights, string? textTower, bool verifyHashes = true)
    {
        var problems = new List<string>();
        var needed = Files.Where(f => metrics.Contains(f.Metric)).ToList();
        if (needed.Count > 0 && weights is null)
            problems.Add($"{string.Join(" and ", needed.Select(f => f.Metric).Distinct())} need a weights folder (--weights) holding {string.Join(", ", needed.Select(f => f.Name))}; see docs/evaluation.md");
        else if (needed.Count > 0)
        {
            foreach (var file in needed)
            {
                var path = Path.Combine(weights!, file.Name);
                if (!File.Exists(path))
                    problems.Add($"{file.Metric} needs {path} ({file.Source}), which does not exist");
                else if (verifyHashes && Sha256(path) is var hash && !hash.StartsWith(file.Sha256Prefix, StringComparison.Ordinal))
                    problems.Add($"{path} has sha256 {hash}, but {file.Source} has {(file.Sha256Prefix.Length == 64 ? file.Sha256Prefix : file.Sha256Prefix + "...")}");
            }
        }
        if (metrics.Contains(EvaluationMetrics.ZeroShot) && modelKind == "wintok")
        {
            if (textTower is null)
                problems.Add("zero-shot of a WinTok checkpoint needs the SigLIP2 text tower (--text-tower: the HF folder of google/siglip2-so400m-patch16-256 or the one args.model names)");
            else
                problems.AddRange(TextTowerFiles.Where(f => !File.Exists(Path.Combine(textTower, f)))
                    .Select(f => $"zero-shot needs {Path.Combine(textTower, f)} in the SigLIP2 folder, which does not exist"));
        }
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
    }

    /// <summary>The local path of each file the worker loads, for the model side's <c>EvaluationWeightFiles</c>.</summary>
    public static string? PathOf(string? weights, string name) => weights is null ? null : Path.Combine(weights, name);

    private static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }
}
