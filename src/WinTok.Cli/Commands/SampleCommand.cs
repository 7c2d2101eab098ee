using System.CommandLine;
using SkiaSharp;
using TorchSharp;
using WinTok.Cli.Hosting;
using WinTok.Model;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok sample FOLDER`: a demo kit that needs no download: FOLDER/images (an ImageFolder corpus of generated JPEG and
/// PNG images in three classes, plus one corrupt file so the failure record shows) and FOLDER/random-tiny.safetensors,
/// a tiny random-initialised checkpoint that tokenizes on a CPU in seconds; and for `wintok train`, FOLDER/training (a
/// tiny SigLIP teacher folder and DINOv2 with formula weights) and FOLDER/train.json, a configuration that trains a tiny
/// WinTok on the images for a dozen iterations. Its tokens are meaningless; the pipelines that make them are the real ones.
/// </summary>
internal static class SampleCommand
{
    public const string CheckpointName = "random-tiny.safetensors";

    /// <summary>A few sizes and aspect ratios, so resizing and cropping are exercised.</summary>
    private static readonly (int Width, int Height)[] Sizes = [(320, 240), (256, 256), (500, 375), (200, 300)];

    private static readonly string[] Classes = ["circles", "gradients", "stripes"];

    private const int ImagesPerClass = 8;

    public static Command Create()
    {
        var folder = new Argument<string>("OUTPUT_FOLDER") { Description = "Where to write images/ and the checkpoint." };
        var perClass = new Option<int>("--images-per-class") { Description = "Images in each of the 3 classes.", DefaultValueFactory = _ => ImagesPerClass };
        var command = new Command("sample", "Write sample images and a tiny random-initialised checkpoint to try `wintok tokenize` with.")
        {
            folder, perClass,
        };
        command.SetAction(parse => Run(parse.GetValue(folder)!, parse.GetValue(perClass)));
        return command;
    }

    /// <summary>
    /// The smallest WinTok that keeps the real architecture: a 2-layer, 64-wide encoder on 16-pixel patches of a 256-pixel
    /// image (so the reference preprocessing runs unchanged), 16 semantic tokens, 4 codebooks of 256 codes of width 4,
    /// and a 2-layer, 64-wide decoder.
    /// </summary>
    public static WinTokConfig TinyConfig { get; } = new(
        new EncoderShape(HiddenSize: 64, Layers: 2, Heads: 4, IntermediateSize: 128, PatchSize: 16, ImageSize: 256),
        NumLatentTokens: 16, VocabSize: 1024, VocabWidth: 16, NumCodebooks: 4,
        DecoderDepth: 2, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128);

    private static int Run(string folder, int imagesPerClass)
    {
        if (File.Exists(folder)) return ExitCodes.Usage($"{folder} is a file, not a folder");
        if (imagesPerClass is < 1 or > 100_000) return ExitCodes.Usage($"--images-per-class must be between 1 and 100000, got {imagesPerClass}");
        var images = Path.Combine(folder, "images");
        var written = WriteImages(images, imagesPerClass);
        var checkpoint = Path.Combine(folder, CheckpointName);
        WriteCheckpoint(checkpoint);
        var trainConfig = WriteTrainingKit(folder);

        Console.WriteLine($"Wrote {written} sample images in {Classes.Length} classes, plus 1 corrupt file, to {images}");
        Console.WriteLine($"Wrote {checkpoint}: a RANDOM-INITIALISED tiny checkpoint. Its tokens are meaningless,");
        Console.WriteLine("but the pipeline that makes them (decode, preprocess, model, shards, manifest) is the real one.");
        Console.WriteLine($"Next: wintok tokenize {images} {Path.Combine(folder, "tokens")} --checkpoint {checkpoint}");
        Console.WriteLine($"Wrote {trainConfig}: trains a tiny WinTok on the images with a formula-weight teacher and discriminator.");
        Console.WriteLine($"Then: wintok train {trainConfig}");
        return ExitCodes.Success;
    }

    /// <summary>The training kit (teacher folder, DINOv2 weights) and train.json beside images/; returns the configuration's path.</summary>
    public static string WriteTrainingKit(string folder, int epochs = 2, int saveEvery = 3)
    {
        var kit = WinTok.Training.TrainingSampleKit.Write(Path.Combine(folder, "training"));
        var config = new Dictionary<string, object?>
        {
            ["train_data"] = "images",
            ["output"] = "training-run",
            ["teacher"] = Path.GetRelativePath(folder, kit.TeacherFolder),
            ["dino"] = Path.GetRelativePath(folder, kit.Dino),
            // The LPIPS of the reference is a 15-million-parameter VGG16: a demo on a CPU does without it.
            ["lp"] = 0.0,
        };
        foreach (var (key, value) in kit.Architecture) config[key] = value;
        foreach (var (key, value) in new Dictionary<string, object?>
        {
            ["local_bs"] = 4L, ["grad_accu"] = 2L, ["epoch"] = (long)epochs, ["warmup_ep"] = 0.25, ["disc_start_ep"] = 0.5, ["disc_warmup_ep"] = 0.25,
            ["precision"] = "fp32", ["seed"] = 0L, ["save_every"] = (long)saveEvery, ["log_every"] = 1L,
        })
            config[key] = value;
        var path = Path.Combine(folder, "train.json");
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(config, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>Writes the corpus; returns how many valid images it holds.</summary>
    public static int WriteImages(string folder, int imagesPerClass = ImagesPerClass)
    {
        var count = 0;
        for (var c = 0; c < Classes.Length; c++)
        {
            var classFolder = Path.Combine(folder, Classes[c]);
            Directory.CreateDirectory(classFolder);
            for (var i = 0; i < imagesPerClass; i++)
            {
                var (width, height) = Sizes[(c + i) % Sizes.Length];
                using var bitmap = new SKBitmap(width, height);
                using (var canvas = new SKCanvas(bitmap))
                {
                    Draw(canvas, Classes[c], i, width, height);
                }
                var png = i % 3 == 2;
                using var image = SKImage.FromBitmap(bitmap);
                using var data = image.Encode(png ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg, 90);
                File.WriteAllBytes(Path.Combine(classFolder, $"{Classes[c]}-{i:D2}.{(png ? "png" : "jpg")}"), data.ToArray());
                count++;
            }
        }
        // A JPEG header followed by noise: listed as an image, rejected by the decoder, recorded in the errors file.
        var corrupt = new byte[2048];
        new Random(7).NextBytes(corrupt);
        corrupt[0] = 0xFF;
        corrupt[1] = 0xD8;
        File.WriteAllBytes(Path.Combine(folder, Classes[0], "corrupt.jpg"), corrupt);
        return count;
    }

    public static void WriteCheckpoint(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // Fixed seed: the same kit, byte for byte, on every machine, so its checkpoint sha256 is stable.
        torch.manual_seed(0);
        using var model = new WinTokModel(TinyConfig);
        WinTokCheckpoint.Save(model, path);
    }

    private static void Draw(SKCanvas canvas, string kind, int index, int width, int height)
    {
        var hue = index * 360f / ImagesPerClass;
        var main = SKColor.FromHsv(hue, 80, 90);
        var other = SKColor.FromHsv((hue + 150) % 360, 70, 60);
        using var paint = new SKPaint { IsAntialias = true };
        switch (kind)
        {
            case "circles":
                canvas.Clear(other);
                paint.Color = main;
                for (var k = 0; k < 3 + index % 4; k++)
                    canvas.DrawCircle(width * (k + 1f) / (5 + index % 4), height * (0.3f + 0.1f * (k % 4)), Math.Min(width, height) / (4f + k), paint);
                break;
            case "gradients":
                paint.Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(width, height), [main, other], SKShaderTileMode.Clamp);
                canvas.DrawRect(0, 0, width, height, paint);
                break;
            default:
                canvas.Clear(SKColors.White);
                paint.Color = main;
                paint.StrokeWidth = 8 + 4 * index;
                for (var x = 0f; x < width + height; x += 2 * paint.StrokeWidth)
                    canvas.DrawLine(x, 0, x - height, height, paint);
                break;
        }
        using var font = new SKFont(SKTypeface.Default, Math.Min(width, height) / 6f);
        paint.Shader = null;
        paint.Color = SKColors.Black;
        canvas.DrawText($"{kind} {index}", 10, height - 12, SKTextAlign.Left, font, paint);
    }
}
