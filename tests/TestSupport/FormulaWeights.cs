using static TorchSharp.torch;

namespace WinTok.TestSupport;

/// <summary>A tensor named in a fixture's parameter list: name, shape and dtype, in state-dict order.</summary>
internal sealed record TensorSpec(string Name, long[] Shape, string DType);

/// <summary>
/// The fixtures' deterministic "formula" weights (tests/fixtures/README.md, section metrics/, and
/// tests/fixtures/metrics/generate.py <c>formula_state</c>), so that the metric networks run without their weight files.
/// For the tensor at position k of its list, element i uses s = sin(0.1 + 0.37 (i mod 10007) + 1.7 k) in float64, then:
/// running_var 1 + 0.25 s², running_mean 0.1 s, 1-d <c>*bn.weight</c> 1 + 0.1 s, other 1-d 0.05 s, and tensors of 2 or
/// more dimensions s·sqrt(3 / fan_in) (its absolute value for LPIPS heads); integer tensors stay zero.
/// </summary>
internal static class FormulaStateDict
{
    /// <summary>True for LPIPS linear heads: the training names <c>lins.K.*</c> and the pip head-file names <c>linK.*</c>.</summary>
    public static bool IsLpipsHead(string name) =>
        name.StartsWith("lins.", StringComparison.Ordinal) || name.Contains(".lins.", StringComparison.Ordinal)
        || (name.StartsWith("lin", StringComparison.Ordinal) && name.Length > 3 && char.IsAsciiDigit(name[3]));

    public static Dictionary<string, Tensor> Generate(IReadOnlyList<TensorSpec> specs)
    {
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int k = 0; k < specs.Count; k++)
        {
            var spec = specs[k];
            weights[spec.Name] = spec.DType switch
            {
                "float32" => tensor(Values(spec, k), spec.Shape, float32),
                "int64" => zeros(spec.Shape, int64),
                _ => throw new NotSupportedException($"Formula weights for {spec.Name}: dtype {spec.DType} is not used by the fixtures"),
            };
        }
        return weights;
    }

    // The metric networks' rules by tensor name, on the product's generator (WinTok.Training.FormulaWeights).
    private static float[] Values(TensorSpec spec, int k) => WinTok.Training.FormulaWeights.Values(spec.Shape, k, (s, fanIn) =>
    {
        if (spec.Name.EndsWith("running_var", StringComparison.Ordinal)) return 1 + 0.25 * s * s;
        if (spec.Name.EndsWith("running_mean", StringComparison.Ordinal)) return 0.1 * s;
        if (spec.Shape.Length == 1) return spec.Name.EndsWith("bn.weight", StringComparison.Ordinal) ? 1 + 0.1 * s : 0.05 * s;
        var value = s * Math.Sqrt(3.0 / fanIn);
        return IsLpipsHead(spec.Name) ? Math.Abs(value) : value;
    });
}

/// <summary>
/// A weights folder for the evaluation's metric networks, laid out as docs/evaluation.md says, with formula weights in
/// the real files' tensor names (torchvision's AlexNet and VGG16 features, pytorch-fid's Inception from the metrics
/// fixture's list) and the real lpips v0.1 head files: the evaluation runs end to end without the published files
/// (their hashes differ, so runs set Evaluation:VerifyWeightHashes=false).
/// </summary>
internal static class FormulaWeightFiles
{
    public static void WriteFolder(string folder)
    {
        Directory.CreateDirectory(Path.Combine(folder, "lpips"));
        using var expected = System.Text.Json.JsonDocument.Parse(File.ReadAllText(TestFixtures.File("metrics", "metrics.expected.json")));
        var inception = expected.RootElement.GetProperty("inception_weights").EnumerateArray()
            .Select(item => new TensorSpec(item[0].GetString()!, item[1].EnumerateArray().Select(size => size.GetInt64()).ToArray(), item[2].GetString()!))
            .ToList();
        Write(Path.Combine(folder, "pt_inception-2015-12-05-6726825d.pth"), FormulaStateDict.Generate(inception));
        Write(Path.Combine(folder, "alexnet-owt-7be5be79.pth"), FormulaStateDict.Generate(TorchvisionFeatures(alex: true)));
        Write(Path.Combine(folder, "vgg16-397923af.pth"), FormulaStateDict.Generate(TorchvisionFeatures(alex: false)));
        File.Copy(TestFixtures.File("lpips-v0.1", "alex.pth"), Path.Combine(folder, "lpips", "alex.pth"), overwrite: true);
        File.Copy(TestFixtures.File("lpips-v0.1", "vgg.pth"), Path.Combine(folder, "lpips", "vgg.pth"), overwrite: true);
    }

    /// <summary>torchvision's <c>features.N.weight/bias</c> of AlexNet or VGG16, in order.</summary>
    public static List<TensorSpec> TorchvisionFeatures(bool alex)
    {
        (int Index, long In, long Out, long Kernel)[] convs = alex
            ? [(0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3)]
            : [(0, 3, 64, 3), (2, 64, 64, 3), (5, 64, 128, 3), (7, 128, 128, 3), (10, 128, 256, 3), (12, 256, 256, 3),
               (14, 256, 256, 3), (17, 256, 512, 3), (19, 512, 512, 3), (21, 512, 512, 3), (24, 512, 512, 3), (26, 512, 512, 3),
               (28, 512, 512, 3)];
        return convs.SelectMany(conv => new[]
        {
            new TensorSpec($"features.{conv.Index}.weight", [conv.Out, conv.In, conv.Kernel, conv.Kernel], "float32"),
            new TensorSpec($"features.{conv.Index}.bias", [conv.Out], "float32"),
        }).ToList();
    }

    /// <summary>The lpips v0.1 head file's <c>linK.model.1.weight</c>, in order.</summary>
    public static List<TensorSpec> PackageHeads(bool alex)
    {
        long[] channels = alex ? [64, 192, 384, 256, 256] : [64, 128, 256, 512, 512];
        return channels.Select((c, k) => new TensorSpec($"lin{k}.model.1.weight", [1, c, 1, 1], "float32")).ToList();
    }

    private static void Write(string path, Dictionary<string, Tensor> weights)
    {
        WinTok.Checkpoints.CheckpointFile.Write(path, new Dictionary<string, object?>(), weights);
        foreach (var tensor in weights.Values) tensor.Dispose();
    }
}
