using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using WinTok.Inference;
using WinTok.Model;

namespace WinTok.Tests.Inference;

/// <summary>The model thread launches a batch before it collects the one before it; each caller must still get its own tokens.</summary>
public sealed class ModelThreadTests
{
    private static readonly WinTokConfig Small = new(
        new EncoderShape(HiddenSize: 64, Layers: 2, Heads: 4, IntermediateSize: 128, PatchSize: 16, ImageSize: 64),
        NumLatentTokens: 4, VocabSize: 1024, VocabWidth: 16, NumCodebooks: 4,
        DecoderDepth: 1, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128);

    [Fact]
    public async Task BatchesQueuedBackToBack_EachGetTheTokensOfTheirOwnImages()
    {
        torch.manual_seed(1);
        var weights = new WinTokModel(Small);
        var copy = new WinTokModel(Small);
        copy.load_state_dict(weights.state_dict());
        using var reference = new TokenizerSession(copy.PrepareForInference(torch.ScalarType.Float32), torch.CPU);
        using var thread = new ModelThread(new ModelThreadSettings(Device: "cpu"), NullLogger<ModelThread>.Instance);
        var source = new ModelSource("small", "sha-small", ModelLoadOptions.Default);
        await thread.ServeAsync(source, weights, TestContext.Current.CancellationToken);
        var perImage = 3 * 64 * 64;
        var batches = Enumerable.Range(0, 6).Select(b =>
        {
            var levels = new byte[(b % 3 + 1) * perImage]; // 1, 2 or 3 images: the staging buffers change size too
            new Random(b).NextBytes(levels);
            return levels;
        }).ToArray();

        var tokenized = await Task.WhenAll(batches.Select(levels => thread.TokenizeAsync(source, levels, levels.Length / perImage,
            semantic: true, TestContext.Current.CancellationToken)));

        for (var b = 0; b < batches.Length; b++)
        {
            var expected = reference.Tokenize(batches[b], batches[b].Length / perImage, semantic: true);
            Assert.Equal(expected.PixelTokens, tokenized[b].PixelTokens);
            Assert.Equal(expected.SemanticTokens, tokenized[b].SemanticTokens);
        }
    }

    [Fact]
    public async Task RunAsync_RunsWorkOnTheModelThreadAndReturnsItsResult()
    {
        using var thread = new ModelThread(new ModelThreadSettings(Device: "cpu"), NullLogger<ModelThread>.Instance);
        var caller = Environment.CurrentManagedThreadId;

        var (name, id) = await thread.RunAsync(() => (Thread.CurrentThread.Name, Environment.CurrentManagedThreadId), TestContext.Current.CancellationToken);

        Assert.Equal("wintok-model", name);
        Assert.NotEqual(caller, id);
    }
}
