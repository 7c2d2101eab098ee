using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>The FID Inception against the reference network's features (metrics fixture, formula weights) and strict loading.</summary>
public sealed class FidInceptionTests
{
    // Relative to the largest feature magnitude of the image: features near zero carry only absolute error.
    private const double Tolerance = 1e-5;

    private const int Chunk = 4;

    public static TheoryData<string> Sets() => MetricsFixtureSet.Sets("inception_images", MetricsFixtureSet.MetricsFolders());

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_InceptionFeatures_MatchTheReferenceForImagesAndReconstructions(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        using var inception = FidInception.FromTensors(FormulaStateDict.Generate(set.Specs("inception_weights")), "formula weights");

        AssertClose(set.Io["inception_images"], Features(inception, set.Images()), $"{set.Name} inception_images");
        AssertClose(set.Io["inception_reconstructions"], Features(inception, set.Reconstructions), $"{set.Name} inception_reconstructions");
    }

    [Fact]
    public void Load_WhenTheFileLacksABlockAndHasAMisshapedTensor_FailsNamingTheFileAndThem()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        var weights = FormulaStateDict.Generate(DefaultSet().Specs("inception_weights"));
        foreach (var key in weights.Keys.Where(key => key.StartsWith("Mixed_7c.", StringComparison.Ordinal)).ToList())
        {
            weights.Remove(key);
        }
        weights["Conv2d_1a_3x3.conv.weight"] = zeros(32, 3, 5, 5);
        weights["AuxLogits.fc.weight"] = zeros(1008, 768);
        string path = folder.File("pt_inception.safetensors");
        Safetensors.Write(path, weights, new Dictionary<string, string>());

        var error = Assert.Throws<WeightFileMismatchException>(() => FidInception.Load(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("FID Inception", error.Message);
        Assert.Contains("Mixed_7c.branch_pool.bn.running_var", error.Missing);
        Assert.Equal(["AuxLogits.fc.weight"], error.Unexpected);
        Assert.Contains("Conv2d_1a_3x3.conv.weight: module expects [32, 3, 3, 3], checkpoint has [32, 3, 5, 5]", error.Message);
    }

    [Fact]
    public void Load_FromAFileWithTheFixturesParameterList_AcceptsItsUnusedClassifier()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        var specs = DefaultSet().Specs("inception_weights");
        string path = folder.File("pt_inception.safetensors");
        Safetensors.Write(path, FormulaStateDict.Generate(specs), new Dictionary<string, string>());

        using var inception = FidInception.Load(path);

        // Every listed tensor but the classifier is a module tensor of the same shape.
        var moduleShapes = inception.state_dict().ToDictionary(pair => pair.Key, pair => pair.Value.shape);
        Assert.Equal(specs.Where(s => !s.Name.StartsWith("fc.", StringComparison.Ordinal)).Select(s => s.Name).Order(StringComparer.Ordinal),
            moduleShapes.Keys.Order(StringComparer.Ordinal));
        Assert.All(specs.Where(s => moduleShapes.ContainsKey(s.Name)), s => Assert.Equal(s.Shape, moduleShapes[s.Name]));
    }

    internal static MetricsFixtureSet DefaultSet() => MetricsFixtureSet.Get(Path.Combine(MetricsFixtureSet.MetricsFolders()[0], "metrics.io.safetensors"));

    internal static Tensor Features(FidInception inception, Tensor images)
    {
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += Chunk)
        {
            parts.Add(inception.call(images.narrow(0, start, Math.Min(Chunk, images.shape[0] - start))));
        }
        return cat(parts);
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var error = (actual - expected).abs().max(1).values;                   // (B) worst absolute error per image
        var scale = expected.abs().max(1).values;                              // (B) largest feature per image
        var relative = (error / scale).to(float64).data<double>().ToArray();
        double worst = relative.Max();
        Assert.True(worst <= Tolerance, $"{what}: worst error relative to the image's largest feature {worst:E2} (per image: {string.Join(", ", relative.Select(r => r.ToString("E1")))})");
    }
}
