using TorchSharp;
using WinTok.Checkpoints;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace WinTok.Tests.Checkpoints;

public sealed class StateDictLoaderTests
{
    // keys: fc.weight (2,3), fc.bias (2), norm.weight (2), norm.bias (2)
    private static Module<Tensor, Tensor> NewModule() => Sequential(("fc", Linear(3, 2)), ("norm", LayerNorm(2)));

    [Fact]
    public void Load_WhenKeysAreMissingUnexpectedAndMisshaped_FailsListingAllThree()
    {
        using var scope = NewDisposeScope();
        using var module = NewModule();
        var source = new Dictionary<string, Tensor>
        {
            ["fc.weight"] = ones(3, 2),          // misshaped
            ["fc.bias"] = ones(2),
            ["norm.weight"] = ones(2),
            ["head.weight"] = ones(4),           // unexpected; norm.bias is missing
        };

        var error = Assert.Throws<CheckpointMismatchException>(() => StateDictLoader.Load(module, source));

        Assert.Contains("1 missing, 1 unexpected, 1 misshaped", error.Message);
        Assert.Contains("norm.bias", error.Message);
        Assert.Contains("head.weight", error.Message);
        Assert.Contains("fc.weight: module expects [2, 3], checkpoint has [3, 2]", error.Message);
        Assert.Equal(["norm.bias"], error.Missing);
        Assert.Equal(["head.weight"], error.Unexpected);
        Assert.Equal("fc.weight", Assert.Single(error.Misshaped).Name);
    }

    [Fact]
    public void Load_WhenStrictAndMismatched_CopiesNothing()
    {
        using var scope = NewDisposeScope();
        using var module = NewModule();
        var source = new Dictionary<string, Tensor> { ["fc.bias"] = full(2, 7f) };

        Assert.Throws<CheckpointMismatchException>(() => StateDictLoader.Load(module, source));

        Assert.NotEqual(7f, module.state_dict()["fc.bias"][0].item<float>());
    }

    [Fact]
    public void Load_WhenNotStrict_ReturnsTheListsAndCopiesOnlyWellShapedKeys()
    {
        using var scope = NewDisposeScope();
        using var module = NewModule();
        var before = module.state_dict()["fc.weight"].clone();
        var source = new Dictionary<string, Tensor>
        {
            ["fc.weight"] = ones(3, 2),
            ["fc.bias"] = full(2, 7f),
            ["extra"] = ones(1),
        };

        var result = StateDictLoader.Load(module, source, strict: false);

        Assert.Equal(["norm.weight", "norm.bias"], result.Missing);
        Assert.Equal(["extra"], result.Unexpected);
        Assert.Equal("fc.weight", Assert.Single(result.Misshaped).Name);
        Assert.False(result.IsExactMatch);
        Assert.Equal(7f, module.state_dict()["fc.bias"][1].item<float>());
        Assert.True(before.equal(module.state_dict()["fc.weight"]).all().item<bool>());
    }

    [Fact]
    public void Load_WhenEverythingMatches_CopiesIntoTheSameParametersConvertingDType()
    {
        using var scope = NewDisposeScope();
        using var module = NewModule();
        var weight = module.state_dict()["fc.weight"];
        var source = module.state_dict().ToDictionary(pair => pair.Key, pair => full(pair.Value.shape, 0.5, ScalarType.Float64));

        var result = StateDictLoader.Load(module, source);

        Assert.True(result.IsExactMatch);
        Assert.Same(weight, module.state_dict()["fc.weight"]);
        Assert.Equal(ScalarType.Float32, module.state_dict()["fc.weight"].dtype);
        Assert.All(module.state_dict().Values, tensor => Assert.True((tensor == 0.5f).all().item<bool>()));
        Assert.True(module.parameters().First().requires_grad);
    }

    [Fact]
    public void Load_WhenManyKeysAreMissing_CapsTheMessageWithCounts()
    {
        using var scope = NewDisposeScope();
        using var module = Sequential(Enumerable.Range(0, 40).Select(i => ($"layer{i}", (Module<Tensor, Tensor>)Linear(1, 1))).ToArray());

        var error = Assert.Throws<CheckpointMismatchException>(() => StateDictLoader.Load(module, new Dictionary<string, Tensor>()));

        Assert.Equal(80, error.Missing.Count);
        Assert.Contains("80 missing", error.Message);
        Assert.Contains($"... and {80 - CheckpointMismatchException.MaxListed} more", error.Message);
        Assert.DoesNotContain("layer39.bias", error.Message);
    }

    [Fact]
    public void LoadInto_TinyCheckpointIntoAModuleWithOneRenamedKey_NamesBothSides()
    {
        using var checkpoint = CheckpointFile.Read(CheckpointTestFiles.TinySafetensors);
        using var scope = NewDisposeScope();
        using var module = Sequential(("conv_out", Conv2d(3, 3, 3)), ("fc_norm", LayerNorm(64)), ("renamed", LayerNorm(64)));

        var result = checkpoint.LoadInto(module, strict: false);

        Assert.Equal(["renamed.weight", "renamed.bias"], result.Missing);
        Assert.Contains("projection.weight", result.Unexpected);
        Assert.Empty(result.Misshaped);
        Assert.True(checkpoint.StateDict["conv_out.weight"].equal(module.state_dict()["conv_out.weight"]).all().item<bool>());
    }
}
