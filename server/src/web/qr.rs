//! QR codes as SVG images (the `qrcode` crate's built-in SVG renderer: no image encoder
//! needed, and it scales to any screen).

use qrcode::QrCode;
use qrcode::render::svg;

/// An SVG document showing `text` as a QR code, or `None` if it does not fit in one.
#[must_use]
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pairing_link_renders_as_an_svg_qr_code() {
        let image =
            super::svg("savesync://pair?server=http%3A%2F%2Fnas%3A7878&code=ABCD-EFGH").unwrap();
        assert!(image.contains("<svg"), "{image}");
        assert!(image.contains("</svg>"));
        assert!(super::svg(&"x".repeat(10_000)).is_none(), "too long for any QR version");
    }
}
