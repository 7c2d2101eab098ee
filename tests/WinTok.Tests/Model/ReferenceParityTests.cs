using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>
/// Our network against the PyTorch reference's own outputs, for every fixture set found (see
/// <see cref="ReferenceFixtureSet.All"/>), loaded from the official .pth layout and from safetensors.
/// </summary>
public sealed class ReferenceParityTests
{
    public static TheoryData<string, string> FixtureSets() => ReferenceFixtureSet.All();

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void Parity_PixelTokens_EqualTheReferenceEverywhere(string configPath, string format)
    {
        var set = ReferenceFixtureSet.Get(configPath, format);
        var expected = set.Io["indices"];
        Assert.Equal(expected.shape, set.Indices.shape);
        var mismatches = set.Indices.ne(expected).sum().item<long>();
        Assert.True(mismatches == 0, $"{set.Name} ({format}): {mismatches} of {expected.numel()} token ids differ from the reference");
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void Parity_FloatOutputs_AreWithin1e4OfTheReference(string configPath, string format)
    {
        var set = ReferenceFixtureSet.Get(configPath, format);
        var failures = new List<string>();
        foreach (var (name, actual) in set.Outputs)
        {
            var expected = set.Io[name];
            if (!expected.shape.SequenceEqual(actual.shape))
            {
                failures.Add($"{name}: shape ({string.Join(", ", actual.shape)}), reference ({string.Join(", ", expected.shape)})");
                continue;
            }
            var error = (actual - expected).abs().max().item<float>();
            if (!(error <= 1e-4)) failures.Add($"{name}: max abs error {error:E2}");
        }
        Assert.True(failures.Count == 0, $"{set.Name} ({format}): " + string.Join("; ", failures));
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void Parity_ServingPathPreparedForInference_GivesTheReferenceTokens(string configPath, string format)
    {
        var set = ReferenceFixtureSet.Get(configPath, format);
        var mismatches = set.ServedIndices.ne(set.Io["indices"]).sum().item<long>();
        var semanticError = (set.ServedSemanticTokens - set.Io["query_tokens"]).abs().max().item<float>();
        Assert.True(mismatches == 0, $"{set.Name} ({format}): {mismatches} token ids differ from the reference");
        Assert.True(semanticError <= 1e-4, $"{set.Name} ({format}): semantic tokens max abs error {semanticError:E2}");
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void Parity_TrainingModeLosses_AreWithin1e5RelativeOfTheReference(string configPath, string format)
    {
        var set = ReferenceFixtureSet.Get(configPath, format);
        AssertRelative(set.Io["train_vq_loss"].item<float>(), set.TrainVqLoss, "vq_loss", set.Name);
        AssertRelative(set.Io["train_entropy_loss"].item<float>(), set.TrainEntropyLoss, "entropy_loss", set.Name);
        var reconError = (set.TrainRecon - set.Io["train_recon"]).abs().max().item<float>();
        Assert.True(reconError <= 1e-4, $"{set.Name} ({format}): training-mode recon max abs error {reconError:E2}");
    }

    private static void AssertRelative(float expected, float actual, string name, string set)
    {
        var relative = Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-12f);
        Assert.True(relative <= 1e-5, $"{set}: {name} {actual} vs reference {expected} (relative error {relative:E2})");
    }
}
