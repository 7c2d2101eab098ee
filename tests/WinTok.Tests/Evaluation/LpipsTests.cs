using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.TestSupport;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>
/// The LPIPS networks against the reference's own numbers (the training LPIPS-VGG on the metrics fixture; the pip
/// package's alex/vgg on tests/fixtures/metrics-lpips when that set has been made), plus the properties every variant
/// must have and strict weight-file loading.
/// </summary>
public sealed class LpipsTests
{
    // Per-image relative tolerance of the issue (10, item 1).
    private const double Tolerance = 1e-5;

    // Images per backbone pass in these CPU tests: VGG16 activations of 256x256 images are large.
    private const int Chunk = 2;

    public static TheoryData<string> TrainingSets() => MetricsFixtureSet.Sets("lpips_vgg", MetricsFixtureSet.MetricsFolders());

    public static TheoryData<string> PackageSets() => MetricsFixtureSet.Sets("lpips_alex", MetricsFixtureSet.PackageLpipsFolders());

    [Theory]
    [MemberData(nameof(TrainingSets))]
    public void MetricParity_TrainingLpipsVgg_MatchesTheReferencePerImage(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        using var lpips = Lpips.FromTensors(FormulaStateDict.Generate(set.Specs("lpips_weights")), "formula weights");

        var actual = PerImage(lpips, set.Images(), set.Reconstructions);

        AssertRelative(set.Io["lpips_vgg"], actual, $"{set.Name} lpips_vgg");
    }

    [Theory(SkipTestWithoutData = true)]
    [MemberData(nameof(PackageSets))]
    public void MetricParity_PackageLpipsAlexAndVgg_MatchTheLpipsPackagePerImage(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        foreach (var (variant, key) in new[] { (LpipsVariant.Alex, "lpips_alex"), (LpipsVariant.Vgg, "lpips_vgg_pip") })
        {
            using var lpips = Lpips.FromTensors(variant,
                FormulaStateDict.Generate(set.Specs(key + "_weights", "backbone")),
                FormulaStateDict.Generate(set.Specs(key + "_weights", "heads")), "formula weights");

            var actual = PerImage(lpips, set.Images(), set.Reconstructions);

            AssertRelative(set.Io[key], actual, $"{set.Name} {key}");
        }
    }

    [Theory]
    [InlineData(LpipsVariant.TrainingVgg)]
    [InlineData(LpipsVariant.Alex)]
    [InlineData(LpipsVariant.Vgg)]
    public void Forward_OnEveryVariant_IsPerImageFiniteNonNegativeZeroOnItselfAndSymmetric(LpipsVariant variant)
    {
        using var scope = NewDisposeScope();
        using var lpips = NewWithFormulaWeights(variant);
        var (x, y) = SmallImages();

        var xy = lpips.call(x, y);
        var yx = lpips.call(y, x);
        var xx = lpips.call(x, x);

        Assert.Equal([x.shape[0]], xy.shape);
        Assert.True(xy.isfinite().all().item<bool>(), $"{variant}: non-finite distances {Text(xy)}");
        Assert.True(xy.gt(0).all().item<bool>(), $"{variant}: distances between different images must be positive: {Text(xy)}");
        Assert.True(xx.eq(0).all().item<bool>(), $"{variant}: LPIPS(x, x) = {Text(xx)}, expected exactly 0");
        Assert.True(xy.allclose(yx, rtol: 1e-5, atol: 0), $"{variant}: LPIPS(x, y) {Text(xy)} differs from LPIPS(y, x) {Text(yx)}");
    }

    [Fact]
    public void Forward_OfTheTrainingVariant_GivesGradientsToTheReconstructionOnly()
    {
        using var scope = NewDisposeScope();
        using var lpips = NewWithFormulaWeights(LpipsVariant.TrainingVgg);
        var (x, y) = SmallImages();
        y.requires_grad = true;

        lpips.call(x, y).mean().backward();

        Assert.NotNull(y.grad);
        Assert.True(y.grad.abs().sum().item<float>() > 0);
        Assert.All(lpips.parameters(), parameter => Assert.Null(parameter.grad));
    }

    [Fact]
    public void LoadTraining_WhenAFileTensorIsMisshapedMissingOrUnexpected_FailsNamingTheFileAndEachTensor()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        var weights = FormulaStateDict.Generate(MetricsFixtureSet.Get(Path.Combine(MetricsFixtureSet.MetricsFolders()[0], "metrics.io.safetensors")).Specs("lpips_weights"));
        weights["net.slice2.1.weight"] = zeros(128, 64, 1, 1);
        weights.Remove("lins.4.model.1.weight");
        weights["lins.5.model.1.weight"] = zeros(1, 512, 1, 1);
        string path = folder.File("lpips_with_vgg.safetensors");
        Safetensors.Write(path, weights, new Dictionary<string, string>());

        var error = Assert.Throws<WeightFileMismatchException>(() => Lpips.LoadTraining(path));

        Assert.Contains(path, error.Message);
        Assert.Equal(["lins.4.model.1.weight"], error.Missing);
        Assert.Equal(["lins.5.model.1.weight"], error.Unexpected);
        Assert.Contains("net.slice2.1.weight: module expects [128, 64, 3, 3], checkpoint has [128, 64, 1, 1]", error.Message);
    }

    [Fact]
    public void LoadPackage_WhenTheBackboneFileIsVggButAlexIsAsked_FailsNamingTheFileAndTheTensors()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        string backbone = folder.File("vgg16.safetensors"), heads = folder.File("alex.safetensors");
        Safetensors.Write(backbone, FormulaStateDict.Generate(TorchvisionFeatures(LpipsVariant.Vgg)), new Dictionary<string, string>());
        Safetensors.Write(heads, FormulaStateDict.Generate(PackageHeads(LpipsVariant.Alex)), new Dictionary<string, string>());

        var error = Assert.Throws<WeightFileMismatchException>(() => Lpips.LoadPackage(LpipsVariant.Alex, backbone, heads));

        Assert.Contains(backbone, error.Message);
        Assert.Contains("torchvision AlexNet", error.Message);
        Assert.Contains("features.0.weight: module expects [64, 3, 11, 11], checkpoint has [64, 3, 3, 3]", error.Message);
        Assert.Contains("features.28.weight", error.Unexpected);
    }

    [Fact]
    public void LoadPackage_IgnoresTheTorchvisionClassifier()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        var backboneWeights = FormulaStateDict.Generate(TorchvisionFeatures(LpipsVariant.Alex));
        backboneWeights["classifier.1.weight"] = zeros(4096, 9216);
        backboneWeights["classifier.1.bias"] = zeros(4096);
        string backbone = folder.File("alexnet.safetensors"), heads = folder.File("alex.safetensors");
        Safetensors.Write(backbone, backboneWeights, new Dictionary<string, string>());
        Safetensors.Write(heads, FormulaStateDict.Generate(PackageHeads(LpipsVariant.Alex)), new Dictionary<string, string>());

        using var lpips = Lpips.LoadPackage(LpipsVariant.Alex, backbone, heads);

        Assert.Equal(LpipsVariant.Alex, lpips.Variant);
    }

    [Theory]
    [InlineData(LpipsVariant.Alex, "alex.pth")]
    [InlineData(LpipsVariant.Vgg, "vgg.pth")]
    public void LoadPackage_ReadsTheRealLegacyHeadFilesOfTheLpipsPackage(LpipsVariant variant, string headFile)
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        string backbone = folder.File("backbone.safetensors");
        Safetensors.Write(backbone, FormulaStateDict.Generate(TorchvisionFeatures(variant)), new Dictionary<string, string>());
        string heads = TestFixtures.File("lpips-v0.1", headFile);

        using var lpips = Lpips.LoadPackage(variant, backbone, heads);
        using var expected = CheckpointFile.Read(heads);

        var loaded = lpips.state_dict();
        for (int k = 0; k < 5; k++)
        {
            Assert.True(loaded[$"lins.{k}.model.1.weight"].equal(expected.StateDict[$"lin{k}.model.1.weight"]).all().item<bool>(), $"head {k}");
        }
    }

    [Fact]
    public void LoadTraining_WhenTheFileDoesNotExist_FailsNamingIt()
    {
        var error = Assert.Throws<FileNotFoundException>(() => Lpips.LoadTraining("/nonexistent/lpips_with_vgg.pth"));

        Assert.Contains("/nonexistent/lpips_with_vgg.pth", error.Message);
    }

    internal static List<TensorSpec> TorchvisionFeatures(LpipsVariant variant) => FormulaWeightFiles.TorchvisionFeatures(alex: variant == LpipsVariant.Alex);

    internal static List<TensorSpec> PackageHeads(LpipsVariant variant) => FormulaWeightFiles.PackageHeads(alex: variant == LpipsVariant.Alex);

    internal static Lpips NewWithFormulaWeights(LpipsVariant variant) => variant == LpipsVariant.TrainingVgg
        ? Lpips.FromTensors(FormulaStateDict.Generate(MetricsFixtureSet.Get(Path.Combine(MetricsFixtureSet.MetricsFolders()[0], "metrics.io.safetensors")).Specs("lpips_weights")), "formula weights")
        : Lpips.FromTensors(variant, FormulaStateDict.Generate(TorchvisionFeatures(variant)), FormulaStateDict.Generate(PackageHeads(variant)), "formula weights");

    /// <summary>Three 64x64 crops of the fixture's photos and of their reconstructions: small enough for quick CPU runs.</summary>
    private static (Tensor X, Tensor Y) SmallImages()
    {
        var set = MetricsFixtureSet.Get(Path.Combine(MetricsFixtureSet.MetricsFolders()[0], "metrics.io.safetensors"));
        static Tensor Crop(Tensor images) => images.narrow(0, 0, 3).narrow(2, 96, 64).narrow(3, 96, 64).contiguous();
        return (Crop(set.Images()), Crop(set.Reconstructions));
    }

    private static string Text(Tensor values) => string.Join(", ", values.to(float64).data<double>().ToArray());

    private static double[] PerImage(Lpips lpips, Tensor images, Tensor reconstructions)
    {
        using var noGrad = no_grad();
        var values = new List<double>();
        for (long start = 0; start < images.shape[0]; start += Chunk)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(Chunk, images.shape[0] - start);
            values.AddRange(lpips.call(images.narrow(0, start, count), reconstructions.narrow(0, start, count)).to(float64).data<double>());
        }
        return [.. values];
    }

    private static void AssertRelative(Tensor expected, double[] actual, string what)
    {
        var reference = expected.to(float64).data<double>().ToArray();
        Assert.Equal(reference.Length, actual.Length);
        var failures = reference.Select((r, i) => (Index: i, Reference: r, Actual: actual[i], Relative: Math.Abs(actual[i] - r) / Math.Abs(r)))
            .Where(item => !(item.Relative <= Tolerance))
            .Select(item => $"image {item.Index}: {item.Actual:R} vs {item.Reference:R} (relative {item.Relative:E2})")
            .ToList();
        double worst = reference.Select((r, i) => Math.Abs(actual[i] - r) / Math.Abs(r)).Max();
        Assert.True(failures.Count == 0, $"{what}: worst relative error {worst:E2}; " + string.Join("; ", failures));
    }
}
