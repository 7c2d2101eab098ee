using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using WinTok.Checkpoints;
using WinTok.Inference;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Evaluation.ZeroShot;

/// <summary>
/// Zero-shot class embeddings (C, E), one unit row per class, built as the references' <c>build_zero_shot_classifier</c>
/// builds them (see <see cref="ZeroShotProtocol"/>), and the scoring of image embeddings against them. Building it for
/// ImageNet takes 80,000 text-tower forwards, so it can be saved and reloaded, keyed by <see cref="KeyFor"/>.
/// </summary>
public sealed class ZeroShotClassifier : IDisposable
{
    private const string WeightsName = "classifier";
    private const string KeyMetadata = "wintok.zeroshot.key";
    private const string ScaleMetadata = "wintok.zeroshot.logit_scale";

    private ZeroShotClassifier(Tensor weights, string key, double logitScale)
    {
        Weights = weights;
        Key = key;
        LogitScale = logitScale;
    }

    /// <summary>(C, E) float32 class embeddings, each row L2-normalised.</summary>
    public Tensor Weights { get; }

    /// <summary>What the classifier was built from (<see cref="KeyFor"/>).</summary>
    public string Key { get; }

    public double LogitScale { get; }

    public int ClassCount => (int)Weights.shape[0];

    /// <summary>
    /// sha256 over the tower's identity and everything in the protocol that changes the class embeddings: the names,
    /// the templates and the lower-casing (not the batch size, which only changes speed).
    /// </summary>
    public static string KeyFor(string towerIdentity, ZeroShotProtocol protocol)
    {
        var text = new StringBuilder();
        text.Append("tower\n").Append(towerIdentity).Append('\n');
        text.Append("lowercase\n").Append(protocol.LowercaseClassNames).Append('\n');
        text.Append("classes ").Append(protocol.ClassNames.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var name in protocol.ClassNames) text.Append(name).Append('\n');
        text.Append("templates ").Append(protocol.Templates.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var template in protocol.Templates) text.Append(template).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>
    /// Builds the classifier on the tower's device: per batch of <see cref="ZeroShotProtocol.ClassesPerBatch"/> classes,
    /// embed the class-major prompts, L2-normalise each, average over the templates; then L2-normalise every class.
    /// </summary>
    public static ZeroShotClassifier Build(ITextTower tower, ZeroShotProtocol protocol)
    {
        ArgumentNullException.ThrowIfNull(tower);
        ArgumentNullException.ThrowIfNull(protocol);
        if (protocol.ClassNames.Count == 0 || protocol.Templates.Count == 0)
            throw new ArgumentException("A zero-shot protocol needs at least one class name and one template", nameof(protocol));
        if (protocol.ClassesPerBatch <= 0)
            throw new ArgumentException($"ClassesPerBatch is {protocol.ClassesPerBatch}; it must be positive", nameof(protocol));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int templates = protocol.Templates.Count;
        var batches = new List<Tensor>();
        for (int first = 0; first < protocol.ClassNames.Count; first += protocol.ClassesPerBatch)
        {
            int count = Math.Min(protocol.ClassesPerBatch, protocol.ClassNames.Count - first);
            var embeddings = F.normalize(tower.EncodeTexts(protocol.Prompts(first, count)), dim: -1);   // (count * T, E)
            batches.Add(embeddings.reshape(count, templates, -1).mean([1]));                            // (count, E)
        }
        var weights = F.normalize(cat(batches, 0), dim: -1);                                             // (C, E)
        // The classifier owns its weights until Dispose, whatever scope the caller has open.
        return new ZeroShotClassifier(weights.DetachFromDisposeScope(), KeyFor(tower.Identity, protocol), protocol.LogitScale);
    }

    /// <summary>
    /// The classifier cached in <paramref name="cacheFolder"/> for this tower and protocol, or a new one built with
    /// <paramref name="tower"/> and saved there. The cached file's key must equal <see cref="KeyFor"/>; any other is rebuilt.
    /// </summary>
    public static ZeroShotClassifier BuildOrLoad(ITextTower tower, ZeroShotProtocol protocol, string cacheFolder, Device device)
    {
        ArgumentNullException.ThrowIfNull(tower);
        var key = KeyFor(tower.Identity, protocol);
        var path = CachePath(cacheFolder, key);
        if (TryLoad(path, key, device) is { } cached) return cached;
        var built = Build(tower, protocol);
        Directory.CreateDirectory(cacheFolder);
        built.Save(path);
        return built.Weights.device == device ? built : built.To(device);
    }

    /// <summary>Where <see cref="BuildOrLoad"/> keeps the classifier of <paramref name="key"/>.</summary>
    public static string CachePath(string cacheFolder, string key) => Path.Combine(cacheFolder, $"zeroshot-{key[..16]}.safetensors");

    /// <summary>Writes the weights (float32) with the key and logit scale as metadata.</summary>
    public void Save(string path) => Safetensors.Write(path,
        new Dictionary<string, Tensor> { [WeightsName] = Weights },
        new Dictionary<string, string> { [KeyMetadata] = Key, [ScaleMetadata] = LogitScale.ToString("R", CultureInfo.InvariantCulture) });

    /// <summary>The classifier saved at <paramref name="path"/> on <paramref name="device"/>, or null when there is no such file or its key differs.</summary>
    /// <exception cref="CheckpointFormatException">The file exists but is not a saved classifier.</exception>
    public static ZeroShotClassifier? TryLoad(string path, string expectedKey, Device device)
    {
        if (!File.Exists(path)) return null;
        var (tensors, metadata) = Safetensors.Read(path);
        try
        {
            if (!metadata.TryGetValue(KeyMetadata, out var key) || !tensors.TryGetValue(WeightsName, out var weights) || weights.dim() != 2
                || !metadata.TryGetValue(ScaleMetadata, out var scale))
                throw new CheckpointFormatException(path, $"it is not a saved zero-shot classifier (needs a 2-D '{WeightsName}' tensor and '{KeyMetadata}', '{ScaleMetadata}' metadata)");
            if (key != expectedKey) return null;
            tensors.Remove(WeightsName);
            Tensor placed;
            using (var scope = NewDisposeScope())
                placed = weights.to(ScalarType.Float32).to(device).DetachFromDisposeScope();
            if (!ReferenceEquals(placed, weights)) weights.Dispose();
            return new ZeroShotClassifier(placed, key, double.Parse(scale, CultureInfo.InvariantCulture));
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>A copy on <paramref name="device"/>; this one is disposed.</summary>
    private ZeroShotClassifier To(Device device)
    {
        var moved = new ZeroShotClassifier(Weights.to(device).DetachFromDisposeScope(), Key, LogitScale);
        Dispose();
        return moved;
    }

    /// <summary>
    /// <c>(LogitScale * images) @ Weightsᵀ</c> for L2-normalised image embeddings (B, E): (B, C) float32. Python evaluates
    /// the reference's <c>100.0 * image_features @ classifier.T</c> left to right, so the scale comes first, as here.
    /// </summary>
    public Tensor Logits(Tensor imageFeatures)
    {
        if (imageFeatures.dim() != 2 || imageFeatures.shape[1] != Weights.shape[1])
            throw new ArgumentException($"Image features are ({string.Join(", ", imageFeatures.shape)}); the classifier needs (B, {Weights.shape[1]})", nameof(imageFeatures));
        using var scope = NewDisposeScope();
        return (imageFeatures * LogitScale).matmul(Weights.t()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The <paramref name="k"/> best classes per image, best first: (B, k) int64, as the reference's
    /// <c>logits.topk(5, dim=-1).indices</c> (torch's own topk, so ties resolve as they do in PyTorch on the same device).
    /// </summary>
    public Tensor TopK(Tensor imageFeatures, int k = 5)
    {
        using var scope = NewDisposeScope();
        return Logits(imageFeatures).topk(Math.Min(k, ClassCount), dim: -1).indexes.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One batch of the reference's accuracy block: top-5 classes of <paramref name="imageFeatures"/> (B, E, normalised,
    /// on the classifier's device) counted against <paramref name="targets"/> (B). Add the results over the dataset.
    /// </summary>
    public ZeroShotCounts Score(Tensor imageFeatures, Tensor targets)
    {
        using var topK = TopK(imageFeatures);
        return ZeroShotCounts.Count(topK, targets);
    }

    public void Dispose() => Weights.Dispose();
}
