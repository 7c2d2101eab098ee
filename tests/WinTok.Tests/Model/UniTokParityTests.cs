using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>
/// Our UniTok network against the PyTorch reference's own outputs (tests/fixtures/unitok and any set in
/// <c>WINTOK_UNITOK_FIXTURES</c>), loaded from the official .pth layout and from safetensors. Every tensor of the io
/// file is compared: integer ones exactly, float ones within 1e-4, the training-mode losses within 1e-5 relative.
/// </summary>
public sealed class UniTokParityTests
{
    /// <summary>Compared by the reference input or elsewhere, not against an output of ours.</summary>
    private static readonly HashSet<string> Inputs = ["input"];

    /// <summary>Scalars compared relatively (losses).</summary>
    private static readonly HashSet<string> Losses = ["train_vq_loss", "train_entropy_loss"];

    public static TheoryData<string, string> FixtureSets() => UniTokFixtureSet.All();

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_EveryReferenceOutput_HasAnOutputOfOurs(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);

        var unchecked_ = set.Io.Keys.Where(name => !Inputs.Contains(name) && !set.Outputs.ContainsKey(name)).ToList();

        Assert.True(unchecked_.Count == 0, $"{set.Name} ({format}): no output of ours for {string.Join(", ", unchecked_)}");
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_IntegerOutputs_EqualTheReference(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);
        var failures = new List<string>();

        foreach (var (name, expected) in set.Io.Where(p => p.Value.dtype == ScalarType.Int64 && set.Outputs.ContainsKey(p.Key)))
        {
            var actual = set.Outputs[name];
            if (!expected.shape.SequenceEqual(actual.shape))
                failures.Add($"{name}: shape ({string.Join(", ", actual.shape)}), reference ({string.Join(", ", expected.shape)})");
            else if (actual.ne(expected).sum().item<long>() is var differing and > 0)
                failures.Add($"{name}: {differing} of {expected.numel()} ids differ");
        }

        Assert.True(failures.Count == 0, $"{set.Name} ({format}): " + string.Join("; ", failures));
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_FloatOutputs_AreWithin1e4OfTheReference(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);
        var failures = new List<string>();

        foreach (var (name, expected) in set.Io.Where(p => p.Value.is_floating_point() && !Inputs.Contains(p.Key) && !Losses.Contains(p.Key)))
        {
            if (!set.Outputs.TryGetValue(name, out var actual)) continue; // reported by the coverage test
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
    public void UniTokParity_TrainingModeLosses_AreWithin1e5RelativeOfTheReference(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);

        foreach (var name in Losses.Where(set.Io.ContainsKey))
        {
            var expected = set.Io[name].item<float>();
            var actual = set.Outputs[name].item<float>();
            var relative = Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-12f);
            Assert.True(relative <= 1e-5, $"{set.Name} ({format}): {name} {actual} vs reference {expected} (relative error {relative:E2})");
        }
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_ServingPathPreparedForInference_GivesTheReferenceTokensAndNoSemanticTokens(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);

        var mismatches = set.ServedIndices.ne(set.Io["indices"]).sum().item<long>();

        Assert.True(mismatches == 0, $"{set.Name} ({format}): {mismatches} token ids differ from the reference");
        Assert.Null(set.ServedSemanticTokens);
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_ConvolutionStagesRewrittenForServing_GiveTheReferenceTokensAndReconstruction(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);
        var expected = set.Io.TryGetValue("recon_from_indices", out var fromIndices) ? fromIndices : set.Io["recon"];

        var mismatches = set.RewrittenIndices.ne(set.Io["indices"]).sum().item<long>();
        var error = (set.RewrittenReconstruction - expected).abs().max().item<float>();

        Assert.True(mismatches == 0, $"{set.Name} ({format}): {mismatches} token ids differ from the reference");
        Assert.True(error <= 1e-4, $"{set.Name} ({format}): reconstruction differs by up to {error:E2}");
    }

    [Theory]
    [MemberData(nameof(FixtureSets))]
    public void UniTokParity_TextTowerFromTheCheckpoint_EmbedsThePromptsAsTheReference(string configPath, string format)
    {
        var set = UniTokFixtureSet.Get(configPath, format);
        Assert.SkipWhen(set.TowerTextEmbedding is null || !set.Io.ContainsKey("text_embedding"), "the set has no prompts");

        var error = (set.TowerTextEmbedding! - set.Io["text_embedding"]).abs().max().item<float>();

        Assert.True(error <= 1e-4, $"{set.Name} ({format}): text tower max abs error {error:E2}");
        Assert.StartsWith("unitok-text:", set.TowerIdentity);
    }
}
