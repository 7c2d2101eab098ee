using TorchSharp.Modules;
using WinTok.Checkpoints;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// A new WinTok as the reference builds one for training from scratch (models/wintok.py <c>WinTok.__init__</c>, spec
/// §1.8): the encoder from pretrained SigLIP2 weights (<c>SiglipVisionModel.from_pretrained(args.model)</c>, its MAP head
/// dropped), the decoder stack with HF Siglip2's <c>_init_weights</c> (xavier-uniform attention and MLP weights, zero
/// attention biases, normal(1e-6) MLP biases, unit LayerNorms), the decode layers with trunc-normal(0.02) linears and
/// kaiming-normal (fan-out, ReLU) convolutions with zero biases, the codebooks by <c>vocab_init</c>, and PyTorch's
/// defaults for the rest (the constructor's). Random draws come from the global generator: seed it first.
/// </summary>
public static class ReferenceInitialization
{
    private const string EncoderPrefix = "encoder.";

    /// <summary>Initialises <paramref name="model"/> (as constructed) from <paramref name="siglip"/>, an HF SigLIP or SigLIP2 state dict.</summary>
    /// <param name="vocabInit">The reference's <c>vocab_init</c>: below 0 uniform(±|v|·width^-0.5/36), above 0 trunc-normal(std v), 0 leaves the default.</param>
    /// <exception cref="CheckpointMismatchException">The SigLIP weights do not fit the encoder; names every offending tensor.</exception>
    public static void Apply(WinTokModel model, IReadOnlyDictionary<string, Tensor> siglip, double vocabInit)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(siglip);
        LoadEncoder(model, siglip);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.StartsWith("decode_task_layer_1.", StringComparison.Ordinal))
            {
                if (name.EndsWith(".weight", StringComparison.Ordinal)) TruncatedNormal(parameter, 0.02);
                else parameter.zero_();
            }
            else if (name.StartsWith("decode_task_layer_2.", StringComparison.Ordinal) || name.StartsWith("conv_out.", StringComparison.Ordinal))
            {
                if (name.EndsWith(".weight", StringComparison.Ordinal)) nn.init.kaiming_normal_(parameter, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
                else parameter.zero_();
            }
            else if (name.StartsWith("decoder.", StringComparison.Ordinal))
            {
                InitializeDecoder(name, parameter);
            }
            else if (name.StartsWith("quantizer.", StringComparison.Ordinal) && name.EndsWith(".codebook.weight", StringComparison.Ordinal))
            {
                if (vocabInit > 0)
                {
                    TruncatedNormal(parameter, vocabInit);
                }
                else if (vocabInit < 0)
                {
                    var bound = Math.Abs(vocabInit) * Math.Pow(parameter.shape[1], -0.5) / 36;
                    nn.init.uniform_(parameter, -bound, bound);
                }
            }
        }
    }

    /// <summary>
    /// torch's <c>nn.init.trunc_normal_(t, mean=0, std, a=-2, b=2)</c>: uniform between the truncation points' CDF
    /// values, inverse error function, scale by std·√2, clamp. TorchSharp 0.107's own <c>trunc_normal_</c> multiplies by
    /// the mean and adds the std (THSRandom.cpp), which fills a constant, so it is not used.
    /// </summary>
    internal static void TruncatedNormal(Tensor tensor, double std, double a = -2, double b = 2)
    {
        static double Cdf(double x) => (1 + Erf(x / Math.Sqrt(2))) / 2;
        var (low, high) = (Cdf(a / std), Cdf(b / std));
        using var noGrad = no_grad();
        tensor.uniform_(2 * low - 1, 2 * high - 1).erfinv_().mul_(std * Math.Sqrt(2)).clamp_(a, b);
    }

    /// <summary>The error function in float64 (torch's, as Python's math.erf that trunc_normal_ calls).</summary>
    private static double Erf(double x)
    {
        using var value = tensor(x, ScalarType.Float64);
        using var result = value.erf();
        return result.item<double>();
    }

    /// <summary>HF Siglip2 <c>_init_weights</c> for the decoder's layers and final LayerNorm.</summary>
    private static void InitializeDecoder(string name, Parameter parameter)
    {
        var weight = name.EndsWith(".weight", StringComparison.Ordinal);
        if (name.Contains(".self_attn.", StringComparison.Ordinal))
        {
            if (weight) nn.init.xavier_uniform_(parameter);
            else parameter.zero_();
        }
        else if (name.Contains(".mlp.", StringComparison.Ordinal))
        {
            if (weight) nn.init.xavier_uniform_(parameter);
            else nn.init.normal_(parameter, std: 1e-6);
        }
        else if (name.Contains("layer_norm", StringComparison.Ordinal) || name.Contains("post_layernorm", StringComparison.Ordinal))
        {
            if (weight) parameter.fill_(1.0);
            else parameter.zero_();
        }
        else
        {
            throw new InvalidOperationException($"No reference initialisation is known for decoder parameter {name}");
        }
    }

    /// <summary>Copies <c>vision_model.*</c> (without the MAP head) into <c>encoder.vision_model.*</c>, strictly within the encoder.</summary>
    private static void LoadEncoder(WinTokModel model, IReadOnlyDictionary<string, Tensor> siglip)
    {
        var vision = siglip.Where(pair => pair.Key.StartsWith("vision_model.", StringComparison.Ordinal)
                && !pair.Key.StartsWith("vision_model.head.", StringComparison.Ordinal))
            .ToDictionary(pair => EncoderPrefix + pair.Key, pair => pair.Value);
        var result = StateDictLoader.Load(model, vision, strict: false);
        var missing = result.Missing.Where(key => key.StartsWith(EncoderPrefix, StringComparison.Ordinal)).Select(key => key[EncoderPrefix.Length..]).ToList();
        if (missing.Count > 0 || result.Unexpected.Count > 0 || result.Misshaped.Count > 0)
            throw new CheckpointMismatchException(missing, result.Unexpected.Select(key => key[EncoderPrefix.Length..]).ToList(), result.Misshaped);
    }
}
