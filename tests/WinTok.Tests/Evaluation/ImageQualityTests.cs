using WinTok.Evaluation;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>PSNR and SSIM against scikit-image as the reference evaluation calls it (metrics fixture), and their edge cases.</summary>
public sealed class ImageQualityTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Sets() => MetricsFixtureSet.Sets("psnr", MetricsFixtureSet.MetricsFolders());

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_PsnrAndSsim_MatchScikitImagePerImage(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        var images = set.Images();

        var psnr = ImageQuality.Psnr(images, set.Reconstructions);
        var ssim = ImageQuality.Ssim(images, set.Reconstructions);

        AssertRelative(set.Io["psnr"], psnr, $"{set.Name} psnr");
        AssertRelative(set.Io["ssim"], ssim, $"{set.Name} ssim");
        AssertRelative(tensor(set.Expected.GetProperty("psnr_mean").GetDouble()).view(1), psnr.mean().view(1), $"{set.Name} psnr_mean");
        AssertRelative(tensor(set.Expected.GetProperty("ssim_mean").GetDouble()).view(1), ssim.mean().view(1), $"{set.Name} ssim_mean");
    }

    [Fact]
    public void ToLevels_TruncatesLikeTheReferencesUint8Cast()
    {
        using var scope = NewDisposeScope();
        // (x + 1) / 2 * 255 of these float32 values: 0, 254.99998..., 255, 127.5, and just below 1.
        var x = tensor(new[] { -1f, 0.99999985f, 1f, 0f, -0.9921569f }).view(1, 1, 1, 5);

        var levels = ImageQuality.ToLevels(x);

        Assert.Equal(new byte[] { 0, 254, 255, 127, 0 }, levels.data<byte>().ToArray());
    }

    [Fact]
    public void PsnrAndSsim_OfAnImageWithItself_AreInfinityAndOne()
    {
        using var scope = NewDisposeScope();
        var images = MetricsFixtureSet.Get(Path.Combine(MetricsFixtureSet.MetricsFolders()[0], "metrics.io.safetensors")).Images().narrow(0, 0, 2);

        Assert.All(ImageQuality.Psnr(images, images).data<double>().ToArray(), value => Assert.True(double.IsPositiveInfinity(value)));
        Assert.All(ImageQuality.Ssim(images, images).data<double>().ToArray(), value => Assert.Equal(1.0, value, 1e-12));
    }

    [Fact]
    public void Ssim_OfImagesSmallerThanTheWindow_FailsSayingSo()
    {
        using var scope = NewDisposeScope();
        var tiny = zeros(1, 3, 6, 32);

        var error = Assert.Throws<ArgumentException>(() => ImageQuality.Ssim(tiny, tiny));

        Assert.Contains("at least 7x7", error.Message);
    }

    [Fact]
    public void Psnr_OfMismatchedShapes_FailsNamingThem()
    {
        using var scope = NewDisposeScope();

        var error = Assert.Throws<ArgumentException>(() => ImageQuality.Psnr(zeros(2, 3, 8, 8), zeros(2, 3, 8, 9)));

        Assert.Contains("[2, 3, 8, 9]", error.Message);
    }

    private static void AssertRelative(Tensor expected, Tensor actual, string what)
    {
        var reference = expected.to(float64).data<double>().ToArray();
        var values = actual.to(float64).data<double>().ToArray();
        Assert.Equal(reference.Length, values.Length);
        var relative = reference.Select((r, i) => Math.Abs(values[i] - r) / Math.Abs(r)).ToArray();
        Assert.True(relative.Max() <= Tolerance, $"{what}: worst relative error {relative.Max():E2}; ours [{string.Join(", ", values)}], reference [{string.Join(", ", reference)}]");
    }
}
