using WinTok.Model;
using WinTok.Tests.Checkpoints;

namespace WinTok.Tests.Model;

/// <summary>Small configurations for tests that need a whole network but not the reference numbers.</summary>
internal static class TinyModels
{
    /// <summary>The shape of the shared fixtures' tiny set: hidden 64, 2 layers, patch 8, 32x32 images.</summary>
    public static WinTokConfig Tiny { get; } = new(
        new EncoderShape(64, 2, 4, 128, 8, 32), NumLatentTokens: 4, VocabSize: 256, VocabWidth: 16, NumCodebooks: 4,
        DecoderDepth: 2, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128);

    /// <summary>The reference fixture's tiny model with its perturbed weights, loaded from the official .pth layout.</summary>
    public static WinTokModel LoadReferenceTiny() =>
        WinTokCheckpoint.Load(CheckpointTestFiles.TinyPth, Tiny.Encoder).Model;
}
