using static TorchSharp.torch;

namespace WinTok.Inference;

/// <summary>
/// A text encoder for zero-shot classification: prompts in, one embedding per prompt out, in the space the image
/// tower's <see cref="ITokenizerModel.EncodeImage"/> embeds into. WinTok uses an external SigLIP2 text tower; UniTok
/// carries its own open_clip text transformer. Synchronous tensor code: call it on the device's one thread.
/// </summary>
public interface ITextTower : IDisposable
{
    /// <summary>Width of the embeddings (must equal the image embedding width).</summary>
    int Width { get; }

    /// <summary>What identifies the tower's weights and tokenizer (e.g. a content hash), for caching classifiers.</summary>
    string Identity { get; }

    /// <summary>Moves the tower to <paramref name="device"/> in eval mode. Call once, after loading.</summary>
    void PrepareForInference(Device device);

    /// <summary>
    /// Tokenizes <paramref name="texts"/> as the tower's reference does (its own padding, context length and special
    /// tokens) and returns their embeddings (T, Width) float32, not normalised.
    /// </summary>
    Tensor EncodeTexts(IReadOnlyList<string> texts);
}
